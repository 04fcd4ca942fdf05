"""The HTTP/1.1 codec without sockets: canned byte streams, fed whole, split at every byte
boundary and one byte at a time, must give the same responses (h11's table-driven style)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import pytest

from loadgen.protocols.base import Codec, ProtocolError, Response
from loadgen.protocols.http1 import MAX_LEARNT_CHUNKS, Http1Codec, encode_request, status_kind


def splits(stream: bytes) -> Iterator[list[bytes]]:
    """The stream whole, cut in two at every boundary, and byte by byte."""
    yield [stream]
    for cut in range(1, len(stream)):
        yield [stream[:cut], stream[cut:]]
    yield [stream[i : i + 1] for i in range(len(stream))]


def feed(codec: Http1Codec, pieces: list[bytes]) -> list[Response]:
    responses = []
    for piece in pieces:
        codec.receive_data(memoryview(bytearray(piece)))  # as the client hands it over
        while (response := codec.next_response()) is not None:
            responses.append(response)
    return responses


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CHUNKED_404 = (
    b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: yes\r\n\r\n"
)
EMPTY_500 = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"

# (id, stream, expected (status, body bytes) in order, closing after the last one)
CASES = [
    ("content-length", OK, [(200, 2)], False),
    ("chunked with extension and trailer", CHUNKED_404, [(404, 21)], False),
    ("three pipelined", OK + CHUNKED_404 + EMPTY_500, [(200, 2), (404, 21), (500, 0)], False),
    (
        "204 and 304 carry no body whatever their headers say",
        b"HTTP/1.1 204 No Content\r\n\r\n"
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n" + OK,
        [(204, 0), (304, 0), (200, 2)],
        False,
    ),
    (
        "interim 100 and 103 are skipped",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK,
        [(200, 2)],
        False,
    ),
    (
        "Connection: close",
        OK + b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
        [(200, 2), (503, 4)],
        True,
    ),
    (
        "HTTP/1.0 closes by default",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        [(200, 2)],
        True,
    ),
    (
        "HTTP/1.0 with keep-alive",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok" + OK,
        [(200, 2), (200, 2)],
        False,
    ),
    (
        "header names in any case, folded whitespace",
        b"HTTP/1.1 201 Created\r\ncontent-LENGTH:   3  \r\nX-A: b\r\n\r\nabc",
        [(201, 3)],
        False,
    ),
    ("a 3xx", b"HTTP/1.1 301 Moved\r\nLocation: /\r\nContent-Length: 0\r\n\r\n", [(301, 0)], False),
]


@pytest.mark.parametrize(
    ("stream", "expected", "closing"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_responses_at_every_split(
    stream: bytes, expected: list[tuple[int, int]], closing: bool
) -> None:
    for pieces in splits(stream):
        codec = Http1Codec()
        got = feed(codec, pieces)
        assert [(r.status, r.body_bytes) for r in got] == expected, pieces
        assert codec.closing is closing
        assert not codec.in_response


def test_large_body_in_odd_pieces() -> None:
    body = bytes(range(256)) * 400
    stream = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body) + OK
    codec = Http1Codec()
    pieces = [stream[i : i + 1447] for i in range(0, len(stream), 1447)]
    assert feed(codec, pieces) == [Response(200, len(body)), Response(200, 2)]


def test_closing_turns_true_only_when_the_closing_response_is_taken() -> None:
    codec = Http1Codec()
    codec.receive_data(OK + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    closing = [codec.closing]
    assert codec.next_response() == Response(200, 2)
    closing.append(codec.closing)  # one more response to hand out first
    assert codec.next_response() == Response(200, 0)
    closing.append(codec.closing)
    codec.reset()  # a new connection: the same request, a fresh parser
    closing.append(codec.closing)
    assert closing == [False, False, True, False]
    assert feed(codec, [OK]) == [Response(200, 2)]


BAD = [
    ("not HTTP at all", b"SSH-2.0-OpenSSH_9.2\r\n"),
    ("two-digit status", b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n"),
    (
        "duplicate Content-Length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
    ),
    ("negative Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
    ("bad chunk size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    ("space in a header name", b"HTTP/1.1 200 OK\r\nContent Length: 2\r\n\r\nok"),
    (
        "data after Connection: close",
        OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") + OK,
    ),
    (
        "101 nobody asked for",
        b"HTTP/1.1 101 Switching\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
    ),
]


@pytest.mark.parametrize("stream", [c[1] for c in BAD], ids=[c[0] for c in BAD])
def test_garbage_is_a_protocol_error(stream: bytes) -> None:
    for pieces in (stream,), [stream[i : i + 1] for i in range(len(stream))]:
        codec = Http1Codec()
        with pytest.raises(ProtocolError) as caught:
            for piece in pieces:
                codec.receive_data(piece)
        assert caught.value.kind == "protocol"
        assert caught.value.message.startswith("server ")  # whose fault it was


def test_responses_before_the_error_stay_available() -> None:
    codec = Http1Codec()
    with pytest.raises(ProtocolError):
        codec.receive_data(OK + OK + b"garbage\r\n\r\n")
    assert [codec.next_response(), codec.next_response(), codec.next_response()] == [
        Response(200, 2),
        Response(200, 2),
        None,
    ]


EOF_CASES = [
    ("in the status line", b"HTTP/1.1 20"),
    ("in the headers", b"HTTP/1.1 200 OK\r\nContent-Len"),
    ("in a Content-Length body", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
    ("in a chunked body", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"),
    (
        "in a chunked body after Connection: close",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nab",
    ),
]


@pytest.mark.parametrize("stream", [c[1] for c in EOF_CASES], ids=[c[0] for c in EOF_CASES])
def test_close_mid_response_is_eof(stream: bytes) -> None:
    codec = Http1Codec()
    codec.receive_data(stream)
    assert codec.in_response
    with pytest.raises(ProtocolError) as caught:
        codec.receive_data(b"")
    assert caught.value.kind == "eof"


def test_close_between_responses_is_clean() -> None:
    codec = Http1Codec()
    codec.receive_data(OK)
    codec.receive_data(b"")
    assert codec.next_response() == Response(200, 2)


@pytest.mark.parametrize("body", [b"", b"until the close"])
def test_body_without_length_runs_to_the_close(body: bytes) -> None:
    codec = Http1Codec()
    codec.receive_data(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body)
    assert codec.next_response() is None  # more body may come
    codec.receive_data(b"")
    assert codec.next_response() == Response(200, len(body))
    assert codec.closing


HEAD_STREAM = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\n"
)


def test_head_responses_have_no_body_at_every_split() -> None:
    for pieces in splits(HEAD_STREAM):
        codec = Http1Codec(method="HEAD")
        got = feed(codec, pieces)
        assert got == [Response(200, 0), Response(404, 0), Response(200, 0)]
        assert codec.closing


def test_head_errors() -> None:
    codec = Http1Codec(method="HEAD")
    codec.receive_data(b"HTTP/1.1 200 OK\r\nContent-")
    with pytest.raises(ProtocolError, match="head") as caught:
        codec.receive_data(b"")
    assert caught.value.kind == "eof"
    codec = Http1Codec(method="HEAD")
    with pytest.raises(ProtocolError, match="without ending"):
        codec.receive_data(b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000)


def test_the_request_is_encoded_once() -> None:
    codec = Http1Codec(host="127.0.0.1:8080", path="/a?b=1", headers={"Accept": "*/*"})
    request = codec.request_bytes()
    assert request == b"GET /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\n\r\n"
    assert codec.request_bytes() is request


REQUESTS = [
    ({}, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    (
        {"method": "POST", "body": b"{}"},
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}",
    ),
    ({"method": "PUT"}, b"PUT / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"),
    (
        {"headers": [("host", "h"), ("X-A", "1"), ("X-A", "2")]},
        b"GET / HTTP/1.1\r\nhost: h\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
    ),
    ({"method": "OPTIONS", "path": "*"}, b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n"),
]


@pytest.mark.parametrize(("arguments", "expected"), REQUESTS)
def test_encode_request(arguments: dict[str, object], expected: bytes) -> None:
    assert encode_request(**arguments) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"method": "GE T"}, "not a token"),
        ({"path": "no-slash"}, "must start with /"),
        ({"path": "/a b"}, "must start with /"),
        ({"headers": {"X-A": "1\r\nInjected: yes"}}, "line break"),
        ({"headers": {"Bad Name": "1"}}, "not a token"),
        ({"headers": {"Content-Length": "5"}}, "set by loadgen"),
        ({"headers": {"X-A": "snow \u2603"}}, "Latin-1"),
    ],
)
def test_encode_request_refuses_what_would_break_framing(
    arguments: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        encode_request(**arguments)  # type: ignore[arg-type]


def test_connect_is_refused() -> None:
    with pytest.raises(ValueError, match="tunnel"):
        Http1Codec(method="connect")


@pytest.mark.parametrize(
    ("status", "kind"),
    [(101, "http_unexpected"), (200, None), (204, None), (299, None), (301, None), (399, None),
     (404, "http_4xx"), (499, "http_4xx"), (500, "http_5xx"), (599, "http_5xx"),
     (999, "http_unexpected")],
)  # fmt: skip
def test_status_kind_by_default_expects_2xx_and_3xx(status: int, kind: str | None) -> None:
    assert status_kind(status) == kind
    assert Http1Codec().status_kind(status) == kind


@pytest.mark.parametrize(
    ("status", "kind"),
    [(200, None), (250, None), (299, None), (304, None), (301, "http_unexpected"),
     (404, "http_4xx"), (410, None), (503, "http_5xx"), (100, "http_unexpected")],
)  # fmt: skip
def test_status_kind_follows_the_expectation(status: int, kind: str | None) -> None:
    expected = ((200, 299), (304, 304), (410, 410))
    assert status_kind(status, expected) == kind
    assert Http1Codec(expected=expected).status_kind(status) == kind


def test_it_is_a_codec() -> None:
    codec: Codec = Http1Codec()  # mypy checks the shape; this checks it at run time too
    assert codec.next_response() is None


def test_receive_counts_responses_and_names_failed_ones() -> None:
    """``receive`` (the client's one call per chunk): the first ``n`` bytes of a receive
    buffer, how many responses they complete, the failed ones (position, kind) in ``failures``."""
    codec = Http1Codec()
    assert codec.next_request() == codec.request_bytes()
    assert codec.next_request() is codec.next_request()  # one buffer the engine sends from
    stream = OK + CHUNKED_404 + EMPTY_500 + OK
    buffer = bytearray(stream) + bytearray(1000)  # a receive buffer larger than the data
    cut = len(OK) + 10
    assert codec.receive(buffer, cut) == 1
    assert codec.failures == []
    rest = bytearray(stream[cut:]) + b"\0" * 7
    assert codec.receive(rest, len(stream) - cut) == 3
    assert codec.failures == [(0, "http_4xx"), (1, "http_5xx")]
    assert codec.next_response() is None  # receive took them
    codec.reset()
    assert codec.failures == []
    moved = b"HTTP/1.1 301 Moved\r\nContent-Length: 0\r\n\r\n"
    strict = Http1Codec(expected=((200, 299),))  # the scenario's expectation decides
    assert strict.receive(bytearray(OK + moved), len(OK + moved)) == 2
    assert strict.failures == [(1, "http_unexpected")]


def test_receive_of_nothing_is_the_close() -> None:
    closing = Http1Codec()
    body = b"HTTP/1.0 200 OK\r\n\r\nhello"
    assert closing.receive(bytearray(body), len(body)) == 0
    assert closing.receive(bytearray(10), 0) == 1  # the close ends a body without a length
    assert closing.closing
    cut = Http1Codec()
    assert cut.receive(bytearray(OK), 10) == 0
    with pytest.raises(ProtocolError) as caught:
        cut.receive(b"", 0)
    assert caught.value.kind == "eof"


def take(codec: Http1Codec, chunk: bytes, kind: type = bytearray) -> tuple[int, list[object]]:
    """``receive`` of one chunk as the client hands it over: in a larger receive buffer
    (``bytearray``), as ``bytes`` (TLS) or as a view (the buffer ring)."""
    if kind is bytearray:
        data: bytes | bytearray | memoryview = bytearray(chunk) + bytearray(64)
    elif kind is memoryview:
        data = memoryview(bytearray(chunk) + bytearray(64))
    else:
        data = bytes(chunk)
    done = codec.receive(data, len(chunk))
    failures = list(codec.failures)
    codec.failures.clear()
    return done, failures


# Same status and length as OK, different bytes: a failure, and a different body.
NOT_OK = b"HTTP/1.1 404 NO\r\nContent-Length: 2\r\n\r\nno"
OK_OTHER_BODY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nko"


@pytest.mark.parametrize("kind", [bytearray, bytes, memoryview])
def test_identical_responses_take_the_shortcut(kind: type) -> None:
    codec = Http1Codec()
    assert take(codec, OK, kind) == (1, [])  # parsed, and learnt
    assert codec._repeat == OK
    assert take(codec, OK, kind) == (1, [])  # k copies of it: no parser
    assert take(codec, OK * 16, kind) == (16, [])  # pipelined
    assert take(codec, OK * 3, kind) == (3, [])
    assert codec._chunks[len(OK) * 3] == (OK * 3, 3)
    # same status and length, only the body differs: parsed (and learnt instead)
    assert take(codec, OK_OTHER_BODY, kind) == (1, [])
    assert codec._repeat == OK_OTHER_BODY
    # same length, another status: parsed, and counted as the failure it is
    assert take(codec, NOT_OK, kind) == (1, [(0, "http_4xx")])
    assert take(codec, NOT_OK, kind) == (1, [(0, "http_4xx")])  # failures are never learnt
    assert codec._repeat == OK_OTHER_BODY


def test_a_request_sets_different_responses_all_stay_learnt() -> None:
    codec = Http1Codec()
    other = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    for _ in range(3):  # one name's response, then another's, in turn
        assert take(codec, OK) == (1, [])
        assert take(codec, other) == (1, [])
        assert take(codec, other * 2) == (2, [])
    assert codec._chunks == {
        len(OK): (OK, 1),
        len(other): (other, 1),
        2 * len(other): (other * 2, 2),
    }
    # a learnt length with other bytes (the same length as OK, a 404): parsed
    assert take(codec, NOT_OK) == (1, [(0, "http_4xx")])
    # past the bound, the learnt chunks start over (and still count right)
    for size in range(MAX_LEARNT_CHUNKS + 2):
        body = b"y" * (10 + size)
        response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
        assert take(codec, response) == (1, [])
        assert take(codec, response) == (1, [])
    assert 0 < len(codec._chunks) <= MAX_LEARNT_CHUNKS


def test_the_shortcut_keeps_split_and_mixed_chunks_exact() -> None:
    codec = Http1Codec()
    assert take(codec, OK * 2) == (2, [])
    assert codec._repeat == OK
    # a response and a half: the half stays in the parser, the rest completes it
    assert take(codec, OK + OK[:5]) == (1, [])
    assert take(codec, OK[5:]) == (1, [])
    # inside a response, bytes equal to the learnt response are that response's body
    carrier = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(OK)
    assert take(codec, carrier) == (0, [])
    assert take(codec, OK) == (1, [])  # the carrier, not the response it carries
    assert take(codec, OK[:7]) == (0, [])
    assert take(codec, OK[7:] + OK) == (2, [])
    # copies with a different response in between: parsed, failures in their places
    assert take(codec, OK * 3 + NOT_OK + OK) == (5, [(3, "http_4xx")])
    assert take(codec, NOT_OK + OK * 2) == (3, [(0, "http_4xx")])
    # a chunk of copies then a cut one: the cut one is still owed
    assert take(codec, OK * 2 + OK[: len(OK) - 1]) == (2, [])
    assert codec.in_response
    assert take(codec, OK[-1:]) == (1, [])
    assert take(codec, OK) == (1, [])
    # a chunk whose length is a multiple of the response's, with other bytes: parsed
    assert take(codec, OK_OTHER_BODY * 2) == (2, [])
    assert take(codec, (OK + OK_OTHER_BODY) * 2) == (4, [])


def test_the_shortcut_sees_expectations_and_the_close() -> None:
    moved = b"HTTP/1.1 301 Moved\r\nContent-Length: 0\r\n\r\n"
    lenient = Http1Codec()
    assert take(lenient, moved) == (1, [])
    assert take(lenient, moved * 2) == (2, [])
    assert lenient._repeat == moved
    strict = Http1Codec(expected=((200, 299),))  # the scenario's expectation decides
    assert take(strict, moved) == (1, [(0, "http_unexpected")])
    assert take(strict, moved * 2) == (2, [(0, "http_unexpected"), (1, "http_unexpected")])
    assert strict._repeat == b""
    # a response that closes the connection is never learnt, nothing after it is counted
    closing = Http1Codec()
    assert take(closing, OK) == (1, [])
    last = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    assert take(closing, last) == (1, [])
    assert closing.closing
    with pytest.raises(ProtocolError):
        take(closing, OK)  # data after Connection: close, copies or not
    # HEAD responses have no body on the wire: they always go the HEAD way
    head = Http1Codec(method="HEAD")
    assert take(head, OK[: OK.index(b"\r\n\r\n") + 4] * 2) == (2, [])
    assert head._repeat == b""


@pytest.mark.parametrize("seed", range(20))
def test_the_shortcut_counts_what_the_parser_counts(seed: int) -> None:
    """Random streams of mostly identical responses, cut at random places and often at
    response boundaries: the same counts and failures as the parser alone gives."""
    rng = random.Random(seed)
    pieces = rng.choices([OK, NOT_OK, OK_OTHER_BODY, CHUNKED_404], weights=[20, 2, 2, 1], k=300)
    stream = b"".join(pieces)
    ends = list(itertools.accumulate(len(piece) for piece in pieces))
    cuts = sorted(set(rng.sample(ends, 120) + rng.sample(range(1, len(stream)), 20)))
    codec = Http1Codec()
    done = 0
    failures: list[int] = []
    for start, stop in itertools.pairwise([0, *cuts, len(stream)]):
        count = codec.receive(bytearray(stream[start:stop]) + bytearray(8), stop - start)
        failures += [done + index for index, _ in codec.failures]
        codec.failures.clear()
        done += count
    reference = Http1Codec()
    reference.receive_data(stream)
    statuses = []
    while (response := reference.next_response()) is not None:
        statuses.append(response.status)
    assert done == len(statuses) == len(pieces)
    assert failures == [i for i, status in enumerate(statuses) if status >= 400]
