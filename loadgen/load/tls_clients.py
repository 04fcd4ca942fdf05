"""The two load clients over TLS: the same clients, with the TLS layer (``loadgen.load.tls``)
between their connection slots and the engine.

A scenario with ``tls.enabled`` gets these classes instead of the plain ones (the choice is
made once, when the shard builds its client: ``loadgen.run.measure``), so a plain run's hot
loop is the plain client's, with no TLS test in it. What each override changes:

* a TCP connect that completes starts the handshake (the receive is posted first, as on the
  plain path); the client's usual next step (send a request, or a stream's header) waits for
  the handshake to complete;
* every receive, in any receive mode, hands its ciphertext to the layer, which feeds the
  client's own receive path with plaintext (``bytes_received`` counts plaintext);
* the client's send function is the layer's, and send completions are the layer's
  (ciphertext); the client learns of its plaintext sends when they have all left
  (``bytes_sent`` counts plaintext);
* a handshake that does not finish within the connect timeout is a ``timeout``, and a TCP
  connection that ends in the middle of one is a ``tls`` error, each with its reason;
* before the start (``preconnect``), the starting connections complete their handshakes too;
* a connection closed in order (FIN) sends its close_notify just before (``TlsLayer.
  close_notify``); a reset one does not. At the end of a run the sends that have left are
  reaped first (``_reap_sends``), so one not yet reaped holds no alert back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loadgen.config.schedule import ArrivalSchedule
from loadgen.engine import Backend
from loadgen.engine.base import Buffer, Completion, ErrorKind
from loadgen.load.client_config import ClientConfig
from loadgen.load.pool import S, SlotPool
from loadgen.load.receive import give_back
from loadgen.load.recorder import Recorder
from loadgen.load.requests import LoadClient
from loadgen.load.requests import _Conn as _RequestConn
from loadgen.load.streams import StreamClient
from loadgen.load.streams import _Conn as _StreamConn
from loadgen.load.tls import TlsConfig, TlsLayer, TlsSlot
from loadgen.load.tokens import INDEX_SHIFT, OP_MASK, OP_RECV, OP_SEND

if TYPE_CHECKING:
    from loadgen.config.protocol_specs import StreamSpec


def _tls_config(config: ClientConfig) -> TlsConfig:
    if config.tls is None:
        raise ValueError("a TLS client needs ClientConfig.tls")
    return config.tls


def _overdue_reason(timeout_s: float) -> str:
    return f"TLS handshake not finished within the connect timeout ({timeout_s:g} s)"


#: At most this many completions are reaped before the last closes (``_reap_sends``).
FINAL_REAP = 512


def _reap_sends(engine: Backend, conns: Sequence[TlsSlot], tls: TlsLayer[Any]) -> None:
    """Before the last closes: reap (without waiting) the completions already there, so
    a send that has left but was not reaped yet (the run ended right after a response
    whose handling sent the next request) no longer holds back its connection's
    close_notify. Everything else reaped here is dropped, as ``close_all`` drops what it
    reaps after closing."""
    for token, result, flags in engine.wait(0, FINAL_REAP):
        conn = conns[token >> INDEX_SHIFT]
        if (
            token & OP_MASK == OP_SEND
            and result >= 0
            and (token & ~OP_MASK) == conn.token_base
            and conn.handle >= 0
        ):
            tls.last_send_done(conn, result)
        else:
            give_back(engine, token, flags)


class _TlsSlots(SlotPool[S]):
    """What both TLS clients do alike at the ends of a connection: its handshake counts as
    setting up; an orderly close sends the close_notify first; a closed slot's TLS session
    is dropped (kept for resumption); the last closes reap the sends that have left first.
    Listed first among a client's bases, so ``super()`` here reaches the plain client."""

    _tls: TlsLayer[S]

    def close_all(self, grace_s: float = 1.0) -> None:
        _reap_sends(self.engine, self._conns, self._tls)
        super().close_all(grace_s)

    def _before_close(self, conn: S, *, abort: bool) -> None:
        if not abort:
            self._tls.close_notify(conn)  # in order: the session's end goes first

    def _on_close(self, conn: S) -> None:
        super()._on_close(conn)
        self._tls.close(conn)

    def _setting_up(self) -> int:
        return self._tls.handshaking


class TlsLoadClient(_TlsSlots[_RequestConn], LoadClient):
    """The request client (``loadgen.load.requests``) over TLS."""

    def __init__(
        self,
        engine: Backend,
        config: ClientConfig,
        recorder: Recorder,
        arrivals: ArrivalSchedule | None = None,
    ) -> None:
        super().__init__(engine, config, recorder, arrivals)
        tls = _tls_config(config)
        self._overdue = _overdue_reason(tls.handshake_timeout_s)
        self._tls: TlsLayer[_RequestConn] = TlsLayer(
            engine,
            tls,
            len(self._conns),
            recorder,
            ready=self._ready,
            consume=self._received,
            sent=None,
            eof=super()._eof,
            fail=self._fail,
            count_bytes=True,  # bytes_sent and bytes_received count plaintext
        )
        self._send = self._tls.send_function
        # The TLS layer counts its bytes itself (and sends each request's ciphertext quietly).
        self._quiet_sends = False

    # --- the slot's life ---------------------------------------------------------------
    def _on_connect(self, conn: _RequestConn, result: int, now_ns: int) -> None:
        if result < 0:
            self._error(conn, result, now_ns)
            return
        self._connected(conn, now_ns)
        self._receiver.post(conn)
        self._tls.start(conn, now_ns)  # ready (and sending) when the handshake completes

    def _stalled(self, conn: _RequestConn, now_ns: int) -> bool:
        if self._tls.handshake_overdue(conn, now_ns):
            # Failed here to say why; the pool's scan counts plain stalls without a reason.
            self._fail(conn, ErrorKind.TIMEOUT.value, now_ns, reason=self._overdue)
            return False
        return super()._stalled(conn, now_ns)

    # --- completions -------------------------------------------------------------------
    def _handle(self, completions: list[Completion], now_ns: int) -> None:
        """The hot loop over TLS: a buffered receive's ciphertext and a send completion
        inline, as the plain client's loop does (``_complete`` says the same, slower)."""
        conns = self._conns
        engine = self.engine
        received = self._tls.received
        wire_sent = self._tls.wire_sent
        channels = self._tls.channels
        post_buffer = self._receiver.post_buffer
        for token, result, flags in completions:
            index = token >> INDEX_SHIFT
            conn = conns[index]
            if (token & ~OP_MASK) != conn.token_base or conn.handle < 0:
                give_back(engine, token, flags)  # a late completion of a torn-down socket
                continue
            op = token & OP_MASK
            if op == OP_RECV and result > 0:
                buf = conn.recv_buf
                if received(conn, buf, result, now_ns):
                    post_buffer(conn.handle, buf, token)
            elif op == OP_SEND and result >= 0:
                channel = channels[index]
                if (
                    channel is not None
                    and channel.wire_sent + result == len(channel.wire)
                    and not channel.outgoing.pending
                ):
                    # All of it left and nothing waits: ``wire_sent`` without the call (the
                    # request client asks for no ``sent``: it counts its own bytes).
                    channel.sending = False
                else:
                    wire_sent(conn, result, now_ns)
            else:
                super()._complete(conn, token, result, flags, now_ns)

    def _complete(
        self, conn: _RequestConn, token: int, result: int, flags: int, now_ns: int
    ) -> None:
        op = token & OP_MASK
        if op == OP_RECV and result > 0:
            buf = conn.recv_buf
            if self._tls.received(conn, buf, result, now_ns):
                self._receiver.post_buffer(conn.handle, buf, token)
        elif op == OP_SEND and result >= 0:
            self._tls.wire_sent(conn, result, now_ns)
        else:
            super()._complete(conn, token, result, flags, now_ns)

    def _received_counted(
        self, conn: _RequestConn, data: Buffer | bytes, n: int, now_ns: int
    ) -> bool:
        """What the receive mechanics (zero-byte drains, ring receives) hand over is
        ciphertext: to the TLS layer, which counts and consumes the plaintext."""
        return self._tls.received(conn, data, n, now_ns)

    def _eof(self, conn: _RequestConn, now_ns: int) -> None:
        if not self._tls.ended_in_handshake(conn, now_ns):
            super()._eof(conn, now_ns)


class TlsStreamClient(_TlsSlots[_StreamConn], StreamClient):
    """The stream client (``loadgen.load.streams``) over TLS: the header, payload and
    trailer travel inside the TLS session; the transfer's time starts with its header, after
    the handshake."""

    def __init__(
        self,
        engine: Backend,
        config: ClientConfig,
        spec: StreamSpec,
        recorder: Recorder,
        transfers_per_connection: int | None = None,
    ) -> None:
        super().__init__(engine, config, spec, recorder, transfers_per_connection)
        tls = _tls_config(config)
        self._overdue = _overdue_reason(tls.handshake_timeout_s)
        self._tls: TlsLayer[_StreamConn] = TlsLayer(
            engine,
            tls,
            len(self._conns),
            recorder,
            ready=self._begin_transfer,
            consume=super()._consume,
            sent=self._sent,
            eof=super()._ended,
            fail=self._fail,
        )
        self._send = self._tls.send_function

    def _on_connect(self, conn: _StreamConn, result: int, now_ns: int) -> None:
        if result < 0:
            self._error(conn, result, now_ns)
            return
        self._connected(conn, now_ns)
        self._new_transfer(conn, now_ns)
        self._arm_receive(conn, now_ns)
        self._tls.start(conn, now_ns)  # the header goes when the handshake completes

    def _stalled(self, conn: _StreamConn, now_ns: int) -> bool:
        if self._tls.handshake_overdue(conn, now_ns):
            self._fail(conn, ErrorKind.TIMEOUT.value, now_ns, reason=self._overdue)
            return False
        if self._tls.in_handshake(conn):
            return False  # the handshake's own timeout applies
        return super()._stalled(conn, now_ns)

    def _complete(
        self, conn: _StreamConn, token: int, result: int, flags: int, now_ns: int
    ) -> None:
        if token & OP_MASK == OP_SEND and result >= 0:
            self._tls.wire_sent(conn, result, now_ns)
        else:
            super()._complete(conn, token, result, flags, now_ns)

    def _consume(self, conn: _StreamConn, buf: Buffer | bytes, n: int, now_ns: int) -> bool:
        """Every receive's ciphertext (the receive mechanics' and the buffered ones in
        ``_complete``) goes to the TLS layer, which hands the plaintext on."""
        return self._tls.received(conn, buf, n, now_ns)

    def _ended(self, conn: _StreamConn, now_ns: int) -> None:
        if not self._tls.ended_in_handshake(conn, now_ns):
            super()._ended(conn, now_ns)
