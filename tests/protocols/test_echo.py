import pytest

from loadgen.protocols.echo import HEADER, EchoCodec, Verdict


def test_message_layout() -> None:
    codec = EchoCodec(connection_id=7, size=64)
    first = bytes(codec.next_request())
    assert HEADER.unpack_from(first) == (0, 7, 64)
    assert all(first[i] == (7 * 31 + i) & 0xFF for i in range(16, 64))
    assert HEADER.unpack_from(codec.next_request())[0] == 1


def test_whole_echo_completes() -> None:
    codec = EchoCodec(1, 64)
    message = bytearray(codec.next_request())
    assert codec.receive(message + bytearray(100), 64) is Verdict.COMPLETE


@pytest.mark.parametrize("cut", [1, 16, 40, 63])
def test_echo_in_two_parts(cut: int) -> None:
    codec = EchoCodec(1, 64)
    message = bytearray(codec.next_request())
    assert codec.receive(message[:cut], cut) is Verdict.INCOMPLETE
    assert codec.pending_bytes == 64 - cut
    assert codec.receive(message[cut:], 64 - cut) is Verdict.COMPLETE


@pytest.mark.parametrize("cut", [1, 16, 40, 63])
def test_a_corrupted_last_part_is_a_mismatch(cut: int) -> None:
    """The first part is intact (INCOMPLETE); the flaw is in the part that completes it."""
    codec = EchoCodec(1, 64)
    echo = bytearray(codec.next_request())
    echo[63] ^= 0x01
    assert codec.receive(echo[:cut], cut) is Verdict.INCOMPLETE
    assert codec.receive(echo[cut:], 64 - cut) is Verdict.MISMATCH


def test_stale_sequence_is_a_mismatch() -> None:
    codec = EchoCodec(1, 64)
    stale = bytearray(codec.next_request())
    codec.next_request()
    assert codec.receive(stale, 64) is Verdict.MISMATCH


@pytest.mark.parametrize("position", [0, 8, 12, 20, 63])
def test_corruption_anywhere_is_a_mismatch(position: int) -> None:
    codec = EchoCodec(3, 64)
    echo = bytearray(codec.next_request())
    echo[position] ^= 0xFF
    assert codec.receive(echo, 64) is Verdict.MISMATCH


def test_corruption_in_a_partial_read_is_caught_early() -> None:
    codec = EchoCodec(3, 1000)
    echo = bytearray(codec.next_request())
    echo[10] ^= 1
    assert codec.receive(echo[:100], 100) is Verdict.MISMATCH


def test_extra_bytes_are_a_mismatch() -> None:
    codec = EchoCodec(1, 64)
    message = bytearray(codec.next_request())
    assert codec.receive(message[:60], 60) is Verdict.INCOMPLETE
    assert codec.receive(message[60:] + b"extra", 9) is Verdict.MISMATCH


def test_large_message_pattern_wraps() -> None:
    codec = EchoCodec(2, 1000)
    message = bytes(codec.next_request())
    assert len(message) == 1000
    assert all(message[i] == (2 * 31 + i) & 0xFF for i in range(16, 1000))


def test_too_small() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        EchoCodec(1, 8)


def test_varying_sizes() -> None:
    codec = EchoCodec(5, 1000)
    for size in (16, 999, 1000, 100, 100):
        message = bytes(codec.next_request(size))
        assert len(message) == size
        assert HEADER.unpack_from(message)[2] == size
        assert codec.receive(bytearray(message), size) is Verdict.COMPLETE
    full = bytes(codec.next_request())
    assert len(full) == 1000 and HEADER.unpack_from(full)[2] == 1000
    short = bytearray(codec.next_request(64))
    assert codec.receive(short[:30], 30) is Verdict.INCOMPLETE
    assert codec.receive(short[30:] + b"x", 35) is Verdict.MISMATCH
    with pytest.raises(ValueError, match="outside"):
        codec.next_request(1001)
