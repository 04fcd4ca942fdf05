"""The stream wire format and payload pattern, without sockets."""

from __future__ import annotations

import hashlib

import pytest

from loadgen.protocols.stream import (
    BLOCK_BYTES,
    HEADER_BYTES,
    PATTERNS,
    STATUS_OK,
    STATUS_VERIFY,
    PayloadPattern,
    StreamHeader,
    StreamProtocolError,
    client_send_limit,
    decode_trailer,
    encode_trailer,
    payload_block,
    server_send_limit,
)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_header_round_trip(pattern: str) -> None:
    header = StreamHeader(pattern, 100 * 1024 * 1024 + 3, 65536)
    wire = header.encode()
    assert len(wire) == HEADER_BYTES == 16
    assert wire[:2] == b"LS" and wire[2] == 1
    assert StreamHeader.decode(wire) == header
    assert StreamHeader.decode(bytearray(wire)) == header


def test_header_layout_is_fixed() -> None:
    # magic "LS", version 1, pattern 3 (pushpull), segment 4096 (u32 LE), bytes 2**40 (u64 LE)
    wire = bytes.fromhex("4c53 01 03 00100000 0000000000010000")
    assert StreamHeader.decode(wire) == StreamHeader("pushpull", 1 << 40, 4096)


@pytest.mark.parametrize(
    ("wire", "problem"),
    [
        (b"XX" + StreamHeader("push", 1, 1).encode()[2:], "not a loadgen stream header"),
        (StreamHeader("push", 1, 1).encode()[:2] + b"\x02" + b"\x01" + bytes(12), "version 2"),
        (b"LS\x01\x05" + bytes(12), "unknown pattern code 5"),
        (b"LS\x01\x01" + bytes(12), "segment of 0 bytes"),
        (StreamHeader("push", 1, 1).encode()[:15], "a header is 16 bytes"),
    ],
)
def test_bad_headers_say_why(wire: bytes, problem: str) -> None:
    with pytest.raises(StreamProtocolError, match=problem):
        StreamHeader.decode(wire)


def test_trailer_round_trip_and_errors() -> None:
    assert decode_trailer(encode_trailer(STATUS_OK, 12345)) == (STATUS_OK, 12345)
    assert decode_trailer(encode_trailer(STATUS_VERIFY, 0)) == (STATUS_VERIFY, 0)
    with pytest.raises(StreamProtocolError, match="not a loadgen stream trailer"):
        decode_trailer(StreamHeader("push", 1, 1).encode())  # a header is not a trailer
    with pytest.raises(StreamProtocolError, match="unknown trailer status 7"):
        decode_trailer(encode_trailer(7, 0))


@pytest.mark.parametrize(
    ("pattern", "client_sends", "server_sends"),
    [("push", 10, 0), ("pull", 0, 10), ("pushpull", 10, 10), ("duplex", 10, 10)],
)
def test_who_sends_what(pattern: str, client_sends: int, server_sends: int) -> None:
    header = StreamHeader(pattern, 10, 4)
    assert (header.client_sends, header.server_sends) == (client_sends, server_sends)
    if pattern != "pushpull":  # everything at once, whatever has been received
        assert client_send_limit(header, 0) == client_sends
        assert server_send_limit(header, 0) == server_sends


def test_pushpull_turns_with_a_short_last_segment() -> None:
    header = StreamHeader("pushpull", 10, 4)  # segments of 4, 4 and 2 bytes each way
    # The client may be one segment ahead of what came back; the server answers whole ones.
    assert [client_send_limit(header, r) for r in range(11)] == [
        4, 4, 4, 4, 8, 8, 8, 8, 10, 10, 10,
    ]  # fmt: skip
    assert [server_send_limit(header, r) for r in range(11)] == [
        0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 10,
    ]  # fmt: skip


def test_payload_block_is_the_documented_sha256_stream() -> None:
    block = payload_block()
    assert len(block) == BLOCK_BYTES
    assert block[:32] == hashlib.sha256(b"loadgen-stream" + bytes(4)).digest()
    assert block[-32:] == hashlib.sha256(b"loadgen-stream" + (2047).to_bytes(4, "little")).digest()


def test_views_follow_the_stream_at_any_offset() -> None:
    pattern = PayloadPattern(100_000)
    block = payload_block()
    stream = block * 4
    for offset, n in [(0, 65536), (1, 100_000), (65535, 2), (3 * 65536 + 7, 1000), (0, 1)]:
        assert pattern.view(offset, n) == stream[offset : offset + n]
    assert pattern.view(5, 10) is pattern.view(5 + BLOCK_BYTES, 10)  # cached: the same object
    with pytest.raises(ValueError, match="exceeds max_chunk"):
        pattern.view(0, 100_001)


def test_matches_finds_a_flipped_byte_a_shift_and_a_repeat() -> None:
    pattern = PayloadPattern(65536)
    good = bytearray(b"junk" + pattern.view(1000, 20000))
    assert pattern.matches(good, 4, 20000, 1000)
    assert not pattern.matches(good, 4, 20000, 1001)  # one byte off
    assert not pattern.matches(good, 4, 20000, 1000 + 256)  # a short-period pattern passes this
    flipped = bytearray(good)
    flipped[4 + 12345] ^= 1
    assert not pattern.matches(flipped, 4, 20000, 1000)
    assert pattern.matches(flipped, 4, 12345, 1000)  # everything before the flip is fine


def test_matches_checks_more_than_one_chunk_in_pieces() -> None:
    pattern = PayloadPattern(1000)  # receive buffers may be larger than the pattern's chunk
    data = bytearray(PayloadPattern(300_000).view(77, 300_000))
    assert pattern.matches(data, 0, 300_000, 77)
    data[-1] ^= 0x80
    assert not pattern.matches(data, 0, 300_000, 77)
