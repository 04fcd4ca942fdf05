"""HTTP requests at run time: which request each send is, with its variables drawn.

``RequestSet`` is built once per shard from the scenario's ``http`` settings: every request
compiled once per target authority (``protocols.http_template``), bodies read from their
files, CSV rows read, one random generator. ``for_connection(i)`` gives connection ``i`` a
``ConnectionRequests`` whose ``exchange()`` returns the bytes of its next exchange
(``pipeline`` requests back to back) and leaves in ``names`` the request index of each
response to come, for the per-name breakdown.

A scenario with one request and no variables gets no ``ConnectionRequests`` at all
(``for_connection`` returns None): the client then sends the codec's fixed bytes, as
before request sets existed.

Choosing: by weight (``bisect`` on the cumulative weights, ~0.3 us) or, with ``order:
sequence``, each connection steps through the list in turn (continuing across its
reconnects). Variables are drawn once per request that uses them:

* ``sequence: global``: one counter for the whole run. Shard ``k`` of ``n`` counts
  ``start + step * (k + n * j)``, so processes and hosts never hand out a value twice and
  together cover the range (a shard that sends more runs ahead of the others);
* ``sequence: connection``: a counter per connection (slot), from ``start``;
* ``random_int``, ``choice``, ``uuid``: from the shard's generator (seeded by the run's
  seed when one is given, so a seeded run repeats its values);
* ``csv``: a row per request, ``cycle`` dealing rows in turn across the run (shards
  interleaved like the global sequence) or ``random``.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from loadgen.config.files import read_csv
from loadgen.config.http import HttpSpec, Variable
from loadgen.protocols.http_template import RequestTemplate

#: random_int spans up to this draw ``low + int(random() * span)``: a double has 53 bits, so
#: no value of such a span is more likely than another by more than 2**32 / 2**53.
_FLOAT_SPAN = 1 << 32
#: A version 4 UUID's fixed bits: the version nibble (bits 76-79) and the variant (62-63).
_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID_SET = (0x4 << 76) | (0x2 << 62)

#: Send buffers a connection keeps, one per exchange length (see ``ConnectionRequests``):
#: a request whose variables vary in width has a few lengths (digits of a counter, rows of a
#: CSV); past this many, an exchange goes out in its own fresh bytes.
MAX_SEND_BUFFERS = 16

#: Fills one variable's values (by key) for one request of connection ``own``.
Draw = Callable[["ConnectionRequests", dict[str, str]], None]


def _interleaved(shard: int, shards: int) -> Callable[[], int]:
    """0-based positions of this shard in a run-wide count: k, k + n, k + 2n, ..."""
    counter = itertools.count(shard, shards)
    return counter.__next__


def _draw_function(
    name: str, variable: Variable, rng: random.Random, shard: int, shards: int
) -> Draw:
    if variable.sequence is not None:
        start = 1 if variable.start is None else variable.start
        step = 1 if variable.step is None else variable.step
        if variable.sequence == "global":
            position = _interleaved(shard, shards)

            def global_sequence(own: ConnectionRequests, values: dict[str, str]) -> None:
                values[name] = str(start + step * position())

            return global_sequence

        def connection_sequence(own: ConnectionRequests, values: dict[str, str]) -> None:
            count = own.counters.get(name, 0)
            own.counters[name] = count + 1
            values[name] = str(start + step * count)

        return connection_sequence
    if variable.random_int is not None:
        low, high = variable.random_int
        span = high - low + 1
        if span <= _FLOAT_SPAN:
            uniform = rng.random  # ~4x cheaper than randint; unbiased to 1 part in 2**21

            def random_int(own: ConnectionRequests, values: dict[str, str]) -> None:
                values[name] = str(low + int(uniform() * span))

            return random_int
        randint = rng.randint

        def random_int_wide(own: ConnectionRequests, values: dict[str, str]) -> None:
            values[name] = str(randint(low, high))

        return random_int_wide
    if variable.choice is not None:
        options = list(variable.choice)
        pick = rng.choice

        def choice(own: ConnectionRequests, values: dict[str, str]) -> None:
            values[name] = pick(options)

        return choice
    if variable.csv is not None:
        columns, rows = read_csv(variable.csv)
        # Each row as the keys a template uses: name.column, and name for one column.
        keyed = [
            {
                **{f"{name}.{c}": v for c, v in zip(columns, row, strict=True)},
                **({name: row[0]} if len(columns) == 1 else {}),
            }
            for row in rows
        ]
        if variable.order == "random":
            pick_row = rng.choice

            def csv_random(own: ConnectionRequests, values: dict[str, str]) -> None:
                values.update(pick_row(keyed))

            return csv_random
        position = _interleaved(shard, shards)
        count = len(keyed)

        def csv_cycle(own: ConnectionRequests, values: dict[str, str]) -> None:
            values.update(keyed[position() % count])

        return csv_cycle
    bits = rng.getrandbits

    def random_uuid(own: ConnectionRequests, values: dict[str, str]) -> None:
        # RFC 9562 version 4: 122 random bits, the version nibble 4 and the variant 10.
        h = "%032x" % (bits(128) & _UUID_CLEAR | _UUID_SET)
        values[name] = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    return random_uuid


class _Compiled:
    """One request for one authority: its template and the variables it draws."""

    __slots__ = ("draws", "fixed", "template")

    def __init__(self, template: RequestTemplate, draws: Sequence[Draw]) -> None:
        self.template = template
        self.fixed = template.fixed
        self.draws = tuple(draws)

    def render(self, own: ConnectionRequests) -> bytes:
        if self.fixed is not None:
            return self.fixed
        values = own.values
        for draw in self.draws:
            draw(own, values)
        return self.template.render(values)


class RequestSet:
    """Every request of a scenario, compiled, and how to choose among them."""

    def __init__(
        self,
        http: HttpSpec,
        authorities: Sequence[str],
        *,
        pipeline: int = 1,
        seed: int | None = None,
        shard: int = 0,
        shards: int = 1,
    ) -> None:
        self.pipeline = pipeline
        rng = random.Random(seed)
        self._rng = rng
        requests = http.request_list()
        #: Names of the breakdown (empty unless the scenario has a request set).
        self.names = [request.label for request in requests] if http.is_set else []
        draws = {
            name: _draw_function(name, variable, rng, shard, shards)
            for name, variable in http.variables.items()
        }
        self._by_authority: list[list[_Compiled]] = []
        for authority in dict.fromkeys(authorities):
            compiled = []
            for request in requests:
                body: str | bytes = request.body or ""
                if request.body_file is not None:
                    body = Path(request.body_file).read_bytes()
                headers = {**http.headers}
                for header, value in request.headers.items():  # a request's own header wins
                    for common in [h for h in headers if h.lower() == header.lower()]:
                        del headers[common]
                    headers[header] = value
                assert request.path is not None  # filled in by HttpSpec
                template = RequestTemplate(
                    request.method, request.path, list(headers.items()), body, authority
                )
                used = dict.fromkeys(key.partition(".")[0] for key in template.keys)
                compiled.append(_Compiled(template, [draws[name] for name in used]))
            self._by_authority.append(compiled)
        self._authority_index = {a: i for i, a in enumerate(dict.fromkeys(authorities))}
        self._authorities = list(authorities)
        weights = [request.weight for request in requests]
        self._cumulative = list(itertools.accumulate(weights))
        self._sequence = http.order == "sequence"
        #: One fixed request and no breakdown: the client's plain path, no source needed.
        self.fixed = http.fixed_request

    def for_connection(self, index: int) -> ConnectionRequests | None:
        """Connection ``index``'s source of requests (it targets
        ``authorities[index % len]``, as the pool spreads connections); None when the
        scenario's one request is fixed."""
        if self.fixed:
            return None
        authority = self._authorities[index % len(self._authorities)]
        requests = self._by_authority[self._authority_index[authority]]
        return ConnectionRequests(self, requests)

    def choose(self) -> int:
        """A request index drawn by weight."""
        cumulative = self._cumulative
        if len(cumulative) == 1:
            return 0
        return bisect.bisect_right(cumulative, self._rng.random() * cumulative[-1])


class ConnectionRequests:
    """One connection's requests: ``exchange()`` → bytes to send; ``names`` → the request
    index of each response the exchange will get, in order.

    A rendered exchange (variables drawn, or several requests joined for a pipeline) is new
    bytes every time; handed to the engine as such, each would be a new buffer to pin, and
    io_uring's pin cache keeps every one until it fills (tens of thousands of dead request
    buffers, dropped at once). So it is copied into this connection's send buffer of its
    length, the same ``bytearray`` every time: pinned once, rewritten in place. That is
    safe because a connection renders its next exchange only when every response to the
    last one is in, so the server has read every byte of it and its sends are complete. A
    fixed request is sent as its own constant bytes, as without a request set."""

    __slots__ = (
        "_requests",
        "_send_buffers",
        "_set",
        "counters",
        "names",
        "next_index",
        "values",
    )

    def __init__(self, owner: RequestSet, requests: list[_Compiled]) -> None:
        self._set = owner
        self._requests = requests
        self.names: list[int] = [0] * owner.pipeline
        self.next_index = 0  # order: sequence: where this connection is in the list
        self.counters: dict[str, int] = {}  # sequence: connection: its counters
        self.values: dict[str, str] = {}  # the values being drawn (reused per request)
        self._send_buffers: dict[int, bytearray] = {}  # by length (class docstring)

    def _pick(self) -> int:
        owner = self._set
        if owner._sequence:
            index = self.next_index
            self.next_index = (index + 1) % len(self._requests)
            return index
        return owner.choose()

    def exchange(self) -> bytes | bytearray:
        requests = self._requests
        names = self.names
        if len(names) == 1:
            index = names[0] = self._pick()
            request = requests[index]
            if request.fixed is not None:
                return request.fixed  # a constant: the engine pins it once
            data = request.render(self)
        else:
            parts = []
            for position in range(len(names)):
                index = names[position] = self._pick()
                parts.append(requests[index].render(self))
            data = b"".join(parts)
        return self._in_send_buffer(data)

    def _in_send_buffer(self, data: bytes) -> bytes | bytearray:
        """``data`` in this connection's send buffer of its length (class docstring)."""
        size = len(data)
        buffer = self._send_buffers.get(size)
        if buffer is not None:
            buffer[:] = data  # the same length: rewritten in place, never resized
            return buffer
        if len(self._send_buffers) >= MAX_SEND_BUFFERS:
            return data
        buffer = self._send_buffers[size] = bytearray(data)
        return buffer
