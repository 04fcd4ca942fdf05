"""The RESP2 codec without sockets: canned replies, fed whole, split at every byte boundary
and one byte at a time, must give the same responses."""

from __future__ import annotations

import pytest

from loadgen.protocols.base import Codec, ProtocolError, Response
from loadgen.protocols.resp import MAX_ARRAY_DEPTH, RespCodec, encode_command

from .test_http1 import splits


def feed(codec: RespCodec, pieces: list[bytes]) -> list[tuple[int, int]]:
    got = []
    for piece in pieces:
        codec.receive_data(memoryview(bytearray(piece)))
        while (response := codec.next_response()) is not None:
            got.append((response.status, response.body_bytes))
    return got


# (id, stream, expected (status, data bytes) per reply)
CASES = [
    ("simple string", b"+PONG\r\n", [(0, 4)]),
    ("error", b"-ERR unknown command 'FOO'\r\n", [(1, 25)]),
    ("integer", b":1000\r\n", [(0, 4)]),
    ("negative integer", b":-7\r\n", [(0, 2)]),
    ("bulk string", b"$5\r\nhello\r\n", [(0, 5)]),
    ("bulk string holding CRLF", b"$4\r\n\r\n\r\n\r\n", [(0, 4)]),
    ("empty bulk string", b"$0\r\n\r\n", [(0, 0)]),
    ("null bulk string", b"$-1\r\n", [(0, 0)]),
    ("null and empty arrays", b"*-1\r\n*0\r\n", [(0, 0), (0, 0)]),
    ("array", b"*3\r\n$3\r\nfoo\r\n:1\r\n$-1\r\n", [(0, 4)]),
    (
        "nested arrays, one element an error",
        b"*2\r\n*2\r\n+a\r\n*1\r\n-E inner\r\n$2\r\nbc\r\n",
        [(1, 10)],
    ),
    (
        "ten pipelined replies",
        b"+OK\r\n$1\r\nv\r\n" * 5,
        [(0, 2), (0, 1)] * 5,
    ),
    (
        "an array of empty arrays then a reply",
        b"*2\r\n*0\r\n*-1\r\n+OK\r\n",
        [(0, 0), (0, 2)],
    ),
]


@pytest.mark.parametrize(("stream", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_replies_at_every_split(stream: bytes, expected: list[tuple[int, int]]) -> None:
    for pieces in splits(stream):
        codec = RespCodec()
        assert feed(codec, pieces) == expected, pieces
        codec.receive_data(b"")  # a clean close: nothing half-parsed


def test_large_bulk_string_in_pieces() -> None:
    value = bytes(range(256)) * 4096  # 1 MiB, with CR and LF bytes inside
    stream = b"$%d\r\n%b\r\n+OK\r\n" % (len(value), value)
    codec = RespCodec()
    pieces = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    assert feed(codec, pieces) == [(0, len(value)), (0, 2)]


def test_error_kind_and_text() -> None:
    codec = RespCodec()
    text = "WRONGTYPE Operation against a key"
    codec.receive_data(b"-%b\r\n+OK\r\n" % text.encode())
    error, ok = codec.next_response(), codec.next_response()
    assert error == Response(1, len(text)) and ok == Response(0, 2)
    assert codec.status_kind(error.status) == "redis_error"
    assert codec.status_kind(ok.status) is None
    assert codec.last_error == text
    assert not codec.closing


BAD = [
    ("unknown type byte", b"?what\r\n"),
    ("RESP3 null", b"_\r\n"),
    ("HTTP answer", b"HTTP/1.1 400 Bad Request\r\n"),
    ("bulk longer than announced", b"$2\r\nabc\r\n"),
    ("malformed length", b"$x1\r\nab\r\n"),
    ("length with a sign", b"*+1\r\n:1\r\n"),
    ("negative length other than -1", b"$-2\r\n"),
    ("malformed integer", b":12a\r\n"),
]


@pytest.mark.parametrize("stream", [c[1] for c in BAD], ids=[c[0] for c in BAD])
def test_garbage_is_a_protocol_error(stream: bytes) -> None:
    for pieces in [stream], [stream[i : i + 1] for i in range(len(stream))]:
        codec = RespCodec()
        with pytest.raises(ProtocolError) as caught:
            for piece in pieces:
                codec.receive_data(piece)
        assert caught.value.kind == "protocol"
        assert caught.value.message.startswith("server ")


def test_endless_line_is_a_protocol_error() -> None:
    codec = RespCodec()
    with pytest.raises(ProtocolError, match="without a line break"):
        for _ in range(20):
            codec.receive_data(b"+" + b"a" * 8192)


def test_arrays_nested_without_end_are_a_protocol_error() -> None:
    """Each level of nesting holds a stack entry and adds no data: without a bound, a peer
    streaming ``*1`` headers grew the client's memory without limit."""
    codec = RespCodec()
    with pytest.raises(ProtocolError, match="nested more than") as caught:
        for _ in range(MAX_ARRAY_DEPTH):
            codec.receive_data(b"*1\r\n" * 16)
    assert caught.value.kind == "protocol"
    assert len(codec._stack) == MAX_ARRAY_DEPTH


def test_arrays_nested_to_the_limit_are_a_reply() -> None:
    codec = RespCodec()
    stream = b"*1\r\n" * MAX_ARRAY_DEPTH + b":7\r\n"
    assert feed(codec, [stream]) == [(0, 1)]


@pytest.mark.parametrize("stream", [b"+PON", b"$5\r\nhel", b"*2\r\n:1\r\n"])
def test_close_mid_reply_is_eof(stream: bytes) -> None:
    codec = RespCodec()
    codec.receive_data(stream)
    with pytest.raises(ProtocolError) as caught:
        codec.receive_data(b"")
    assert caught.value.kind == "eof"


def test_reset_forgets_a_half_reply() -> None:
    codec = RespCodec()
    codec.receive_data(b"*2\r\n:1\r\n")
    codec.reset()
    codec.receive_data(b"+OK\r\n")
    assert codec.next_response() == Response(0, 2)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (("PING",), b"*1\r\n$4\r\nPING\r\n"),
        (("SET", "k", "v"), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"),
        (("SET", b"k", b"\r\n"), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\r\n\r\n"),
        (("EXPIRE", "k", 10), b"*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n10\r\n"),
        (("INCRBYFLOAT", "k", 0.5), b"*3\r\n$11\r\nINCRBYFLOAT\r\n$1\r\nk\r\n$3\r\n0.5\r\n"),
        (("SET", "k", "\u00e9"), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n"),
    ],
)
def test_encode_command(command: tuple[bytes | str | int | float, ...], expected: bytes) -> None:
    assert encode_command(*command) == expected
    codec = RespCodec(command)
    assert codec.request_bytes() == expected
    assert codec.request_bytes() is codec.request_bytes()


def test_encode_command_refuses() -> None:
    with pytest.raises(ValueError, match="at least its name"):
        encode_command()
    with pytest.raises(TypeError, match="bytes, str or a number"):
        encode_command("SET", "k", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes, str or a number"):
        encode_command("SET", "k", True)


def test_it_is_a_codec() -> None:
    codec: Codec = RespCodec()
    assert codec.next_response() is None


def test_repeated_replies_take_the_shortcut_and_anything_else_does_not() -> None:
    codec = RespCodec(("SET", "k", "v"))
    assert feed(codec, [b"+OK\r\n+OK\r\n"]) == [(0, 2)] * 2  # learns the reply +OK
    # k copies of it: answered without the state machine (the buffer is never used)
    assert feed(codec, [b"+OK\r\n" * 16, b"+OK\r\n"]) == [(0, 2)] * 17
    assert not codec._buffer
    # not copies of it: the general path, which still sees errors and split replies
    assert feed(codec, [b"+OK\r\n-ERR full\r\n"]) == [(0, 2), (1, 8)]
    assert codec.last_error == "ERR full"
    assert feed(codec, [b"+O", b"K\r\n+OK\r", b"\n"]) == [(0, 2)] * 2
    assert feed(codec, [b"+OK\r\n+OK"]) == [(0, 2)]  # a half reply waits for its end
    assert feed(codec, [b"\r\n" + b"+OK\r\n" * 3]) == [(0, 2)] * 4
    # an error reply is never learnt: each one is parsed (and counted) again
    errors = RespCodec(("SET", "k", "v"))
    assert feed(errors, [b"-ERR x\r\n", b"-ERR x\r\n-ERR x\r\n"]) == [(1, 5)] * 3
    assert errors._repeat == b""
    # a bulk reply is learnt too (GET)
    get = RespCodec(("GET", "k"))
    assert feed(get, [b"$3\r\nxxx\r\n", b"$3\r\nxxx\r\n" * 4]) == [(0, 3)] * 5
    assert get._repeat == b"$3\r\nxxx\r\n"
    with pytest.raises(ProtocolError):  # eof mid-reply is still seen after the shortcut
        get.receive_data(memoryview(bytearray(b"$3\r\nx")))
        get.receive_data(b"")


def test_receive_counts_replies_and_names_failed_ones() -> None:
    codec = RespCodec(("GET", "k"))
    assert codec.next_request() == codec.request_bytes()
    stream = b"$3\r\nxxx\r\n-ERR no\r\n*2\r\n:1\r\n-ERR inner\r\n+OK\r\n"
    buffer = bytearray(stream) + bytearray(64)
    assert codec.receive(buffer, 6) == 0
    assert codec.receive(bytearray(stream[6:]), len(stream) - 6) == 4
    assert codec.failures == [(1, "redis_error"), (2, "redis_error")]
    assert codec.next_response() is None
    with pytest.raises(ProtocolError) as caught:
        codec.receive(bytearray(b"$5\r\nab"), 6)
        codec.receive(b"", 0)
    assert caught.value.kind == "eof"
