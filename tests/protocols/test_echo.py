import pytest

from loadgen.engine.base import ErrorKind
from loadgen.protocols.base import Codec, ProtocolError
from loadgen.protocols.echo import HEADER, EchoCodec


def _verify_error(codec: EchoCodec, data: bytes | bytearray, n: int) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        codec.receive(data, n)
    assert caught.value.kind == ErrorKind.VERIFY.value
    return caught.value


def test_is_a_codec() -> None:
    codec: Codec = EchoCodec(1, 64)  # mypy checks the protocol; this checks it at run time
    assert codec.closing is False
    assert codec.failures == []
    assert codec.status_kind(0) is None


def test_message_layout() -> None:
    codec = EchoCodec(connection_id=7, size=64)
    first = bytes(codec.next_request())
    assert HEADER.unpack_from(first) == (0, 7, 64)
    assert all(first[i] == (7 * 31 + i) & 0xFF for i in range(16, 64))
    assert HEADER.unpack_from(codec.next_request())[0] == 1


def test_whole_echo_completes() -> None:
    codec = EchoCodec(1, 64)
    message = bytearray(codec.next_request())
    assert codec.receive(message + bytearray(100), 64) == 1


@pytest.mark.parametrize("cut", [1, 16, 40, 63])
def test_echo_in_two_parts(cut: int) -> None:
    codec = EchoCodec(1, 64)
    message = bytearray(codec.next_request())
    assert codec.receive(message[:cut], cut) == 0
    assert codec.pending_bytes == 64 - cut
    assert codec.receive(message[cut:], 64 - cut) == 1


@pytest.mark.parametrize("cut", [1, 16, 40, 63])
def test_a_corrupted_last_part_is_a_verify_error(cut: int) -> None:
    """The first part is intact (incomplete); the flaw is in the part that completes it."""
    codec = EchoCodec(1, 64)
    echo = bytearray(codec.next_request())
    echo[63] ^= 0x01
    assert codec.receive(echo[:cut], cut) == 0
    _verify_error(codec, echo[cut:], 64 - cut)


def test_the_sans_io_interface_gives_one_response_per_echo() -> None:
    codec = EchoCodec(1, 64)
    message = bytes(codec.next_request())
    codec.receive_data(message[:10])
    assert codec.next_response() is None
    codec.receive_data(message[10:])
    response = codec.next_response()
    assert response is not None and (response.status, response.body_bytes) == (0, 64)
    assert codec.next_response() is None


def test_stale_sequence_is_a_verify_error() -> None:
    codec = EchoCodec(1, 64)
    stale = bytearray(codec.next_request())
    codec.next_request()
    assert "message 1 of connection 1" in _verify_error(codec, stale, 64).message


@pytest.mark.parametrize("position", [0, 8, 12, 20, 63])
def test_corruption_anywhere_is_a_verify_error(position: int) -> None:
    codec = EchoCodec(3, 64)
    echo = bytearray(codec.next_request())
    echo[position] ^= 0xFF
    _verify_error(codec, echo, 64)


def test_corruption_in_a_partial_read_is_caught_early() -> None:
    codec = EchoCodec(3, 1000)
    echo = bytearray(codec.next_request())
    echo[10] ^= 1
    _verify_error(codec, echo[:100], 100)


def test_corruption_in_the_last_piece_is_caught() -> None:
    codec = EchoCodec(3, 1000)
    echo = bytearray(codec.next_request())
    echo[999] ^= 1
    assert codec.receive(echo[:600], 600) == 0
    _verify_error(codec, echo[600:], 400)


def test_extra_bytes_are_a_verify_error() -> None:
    codec = EchoCodec(1, 64)
    message = bytearray(codec.next_request())
    assert codec.receive(message[:60], 60) == 0
    _verify_error(codec, message[60:] + b"extra", 9)


def test_bytes_with_no_message_outstanding_are_a_verify_error() -> None:
    codec = EchoCodec(1, 64)
    _verify_error(codec, bytearray(64), 64)  # before any request
    message = bytearray(codec.next_request())
    assert codec.receive(message, 64) == 1
    _verify_error(codec, message, 1)  # after its echo was complete
    codec.next_request()
    codec.reset()  # a reconnect: the message outstanding on the old socket is forgotten
    _verify_error(codec, message, 64)


@pytest.mark.parametrize("received", [0, 30])
def test_a_close_is_an_eof_error(received: int) -> None:
    codec = EchoCodec(1, 64)
    message = bytearray(codec.next_request())
    if received:
        assert codec.receive(message, received) == 0
    with pytest.raises(ProtocolError) as caught:
        codec.receive(b"", 0)
    assert caught.value.kind == ErrorKind.EOF.value


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
        assert codec.receive(bytearray(message), size) == 1
    full = bytes(codec.next_request())
    assert len(full) == 1000 and HEADER.unpack_from(full)[2] == 1000
    short = bytearray(codec.next_request(64))
    assert codec.receive(short[:30], 30) == 0
    _verify_error(codec, short[30:] + b"x", 35)
    with pytest.raises(ValueError, match="outside"):
        codec.next_request(1001)


def test_sizes_are_drawn_per_message() -> None:
    drawn = iter([20, 500, 64])
    codec = EchoCodec(5, 1000, sizes=lambda: next(drawn))
    assert [len(codec.next_request()) for _ in range(3)] == [20, 500, 64]
