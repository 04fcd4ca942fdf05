"""The token every operation carries, shared by the pool, the receive mechanics and both
clients.

``((slot_index << GENERATION_BITS) | generation) << OP_BITS | op``: the engine hands the
token back with the operation's completion, so the loop finds the slot by a shift
(``token >> INDEX_SHIFT``) and the operation by a mask (``token & OP_MASK``), with no
dictionary in the hot path. The generation changes whenever a slot's socket is torn down
and reopened, so a late completion of an operation on the old socket (a cancelled
receive, say) no longer matches the slot's ``token_base`` and is recognised as stale.
"""

from __future__ import annotations

#: Operation kinds fit in 3 bits (5 used).
OP_BITS = 3
#: 65,536 generations: a slot would have to be reopened that many times while one
#: completion of its old socket is still queued for the stale check to be fooled.
GENERATION_BITS = 16
OP_MASK = (1 << OP_BITS) - 1
GENERATION_MASK = (1 << GENERATION_BITS) - 1
#: ``token >> INDEX_SHIFT`` is the slot (connection) index of a token.
INDEX_SHIFT = OP_BITS + GENERATION_BITS

OP_CONNECT, OP_SEND, OP_RECV, OP_RECV_ZERO, OP_RECV_RING = 0, 1, 2, 3, 4


def token_base(index: int, generation: int) -> int:
    """The token of slot ``index`` in its ``generation``, without the operation bits."""
    return ((index << GENERATION_BITS) | generation) << OP_BITS
