"""Large replies without sockets: RESP bulk strings and HTTP bodies are counted, never
stored (the codec's buffers stay small however large the reply), and a reply past the
configured maximum fails the connection with kind ``reply_too_large``."""

from __future__ import annotations

import pytest

from loadgen.protocols.base import ProtocolError
from loadgen.protocols.http1 import Http1Codec
from loadgen.protocols.resp import RespCodec

CHUNK_BYTES = 64 * 1024  # a typical receive size
#: Far below the 100 MB payload: buffering it would pass this at once.
SMALL_BUFFER_BYTES = 2 * CHUNK_BYTES


def _resp_buffered_bytes(codec: RespCodec) -> int:
    return len(codec._buffer)


def test_a_100mb_bulk_string_is_counted_not_stored() -> None:
    size = 100_000_000
    codec = RespCodec(("GET", "k"), max_reply_bytes=200_000_000)
    codec.receive_data(b"$%d\r\n" % size + b"x" * 1000)  # header and the first bytes
    chunk = b"y" * CHUNK_BYTES
    remaining = size - 1000
    largest = _resp_buffered_bytes(codec)
    while remaining:
        piece = chunk[: min(CHUNK_BYTES, remaining)]
        codec.receive_data(memoryview(bytearray(piece)))
        remaining -= len(piece)
        largest = max(largest, _resp_buffered_bytes(codec))
        assert codec.next_response() is None
    codec.receive_data(b"\r")  # the CRLF split too
    assert codec.next_response() is None
    codec.receive_data(b"\n+OK\r\n")
    first, second = codec.next_response(), codec.next_response()
    assert first is not None and (first.status, first.body_bytes) == (0, size)
    assert second is not None and (second.status, second.body_bytes) == (0, 2)
    assert largest <= SMALL_BUFFER_BYTES


def test_a_skipped_bulk_string_inside_an_array() -> None:
    codec = RespCodec()
    codec.receive_data(b"*2\r\n$10\r\n01234")
    codec.receive_data(b"56789")
    codec.receive_data(b"\r\n:5\r\n")
    response = codec.next_response()
    assert response is not None and (response.status, response.body_bytes) == (0, 11)


def test_a_skipped_bulk_string_must_end_with_crlf() -> None:
    codec = RespCodec()
    codec.receive_data(b"$4\r\nab")
    codec.receive_data(b"cd")
    with pytest.raises(ProtocolError, match="longer than announced"):
        codec.receive_data(b"e\r\n")


def test_close_inside_a_skipped_bulk_string_is_eof() -> None:
    codec = RespCodec()
    codec.receive_data(b"$100\r\nab")
    with pytest.raises(ProtocolError) as error:
        codec.receive_data(b"")
    assert error.value.kind == "eof"


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(b"$1000000000\r\n", id="one bulk string"),
        pytest.param(b"$99999999999\r\n", id="past Redis's own limit"),
        pytest.param(b"*3\r\n$400\r\n" + b"a" * 400 + b"\r\n$700\r\n", id="an array's total"),
    ],
)
def test_a_resp_reply_over_the_maximum(stream: bytes) -> None:
    codec = RespCodec(max_reply_bytes=1000)
    with pytest.raises(ProtocolError) as error:
        codec.receive_data(stream)
    assert error.value.kind == "reply_too_large"


def test_a_resp_reply_at_the_maximum_is_accepted() -> None:
    codec = RespCodec(max_reply_bytes=1000)
    codec.receive_data(b"$1000\r\n" + b"a" * 1000 + b"\r\n")
    response = codec.next_response()
    assert response is not None and response.body_bytes == 1000


def test_a_100mb_http_body_is_counted_not_stored() -> None:
    size = 100_000_000
    codec = Http1Codec(max_body_bytes=200_000_000)
    codec.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    chunk = b"z" * CHUNK_BYTES
    remaining = size
    while remaining:
        piece = chunk[: min(CHUNK_BYTES, remaining)]
        codec.receive_data(memoryview(bytearray(piece)))
        remaining -= len(piece)
        assert len(codec._head_buffer) == 0
    response = codec.next_response()
    assert response is not None and (response.status, response.body_bytes) == (200, size)


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", id="content-length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", id="to the close"),
    ],
)
def test_an_http_body_over_the_maximum(head: bytes) -> None:
    codec = Http1Codec(max_body_bytes=1000)
    codec.receive_data(head + b"b" * 1000)  # exactly the maximum: fine
    with pytest.raises(ProtocolError) as error:
        codec.receive_data(b"b")
    assert error.value.kind == "reply_too_large"


def test_an_http_chunked_body_over_the_maximum() -> None:
    codec = Http1Codec(max_body_bytes=1000)
    codec.receive_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    codec.receive_data(b"3e8\r\n" + b"c" * 1000 + b"\r\n")
    with pytest.raises(ProtocolError) as error:
        codec.receive_data(b"1\r\nc\r\n0\r\n\r\n")
    assert error.value.kind == "reply_too_large"
