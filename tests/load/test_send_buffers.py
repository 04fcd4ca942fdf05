"""A request set's exchanges reach the engine in a few long-lived buffers: one per length
per connection, rewritten in place, so the engine pins each once (not one fresh ``bytes``
per send, which io_uring's pin cache would keep until it filled)."""

from __future__ import annotations

from loadgen.config.scenario import parse_scenario
from loadgen.load.request_set import MAX_SEND_BUFFERS, RequestSet


def _set(protocol: str, pipeline: int = 1) -> RequestSet:
    head = "name: s\ntarget: 127.0.0.1:1\nconnections: 1\nduration: 1s\nprotocol:\n"
    scenario = parse_scenario(head + protocol)
    http = scenario.protocol.http
    assert http is not None
    return RequestSet(http, ["127.0.0.1:1"], pipeline=pipeline, seed=3)


def test_variable_requests_reuse_one_buffer_per_length() -> None:
    requests = _set(
        "  http:\n    path: /item/${n}\n"
        "    variables: {n: {sequence: connection, start: 100, step: 1}}\n"
    ).for_connection(0)
    assert requests is not None
    first = requests.exchange()
    assert bytes(first).startswith(b"GET /item/100 HTTP/1.1\r\n")
    second = requests.exchange()
    assert second is first  # the same buffer, rewritten
    assert bytes(second).startswith(b"GET /item/101 HTTP/1.1\r\n")
    seen = {id(requests.exchange()) for _ in range(2000)}  # /item/102 ... /item/2101
    assert len(seen) == 2  # three digits, then four: one buffer per length


def test_pipelined_fixed_requests_are_joined_into_the_buffer() -> None:
    requests = _set(
        "  http:\n    order: sequence\n    requests: [{path: /a}, {path: /bb}]\n", pipeline=3
    ).for_connection(0)
    assert requests is not None
    one = requests.exchange()
    assert bytes(one).count(b"GET /a ") == 2 and bytes(one).count(b"GET /bb ") == 1
    assert requests.names == [0, 1, 0]
    two = requests.exchange()
    assert requests.names == [1, 0, 1]
    assert bytes(two).count(b"GET /a ") == 1 and bytes(two).count(b"GET /bb ") == 2
    assert two is not one  # another length
    assert requests.exchange() is one  # [0, 1, 0] again: the first buffer, rewritten


def test_a_single_fixed_request_goes_out_as_its_constant_bytes() -> None:
    requests = _set(
        "  http:\n    requests: [{name: a, path: /a}, {name: b, path: /b}]\n"
    ).for_connection(0)
    assert requests is not None
    sent = [requests.exchange() for _ in range(50)]
    assert {type(data) for data in sent} == {bytes}
    assert len({id(data) for data in sent}) == 2  # one constant per request


def test_lengths_past_the_bound_go_out_in_their_own_bytes() -> None:
    requests = _set(
        "  http:\n    path: /${v}\n"
        "    variables: {v: {choice: [" + ", ".join("x" * k for k in range(1, 40)) + "]}}\n"
    ).for_connection(0)
    assert requests is not None
    buffers = set()
    for _ in range(3000):
        data = requests.exchange()
        if isinstance(data, bytearray):
            buffers.add(id(data))
        else:
            assert type(data) is bytes and data.startswith(b"GET /x")
    assert len(buffers) == MAX_SEND_BUFFERS
