"""Request templates: compiled once, rendered per send; parsed back by llhttp (the parser
the built-in target uses) to check the framing of every rendered request."""

from __future__ import annotations

import httptools
import pytest

from loadgen.protocols.http1 import encode_request
from loadgen.protocols.http_template import Reference, RequestTemplate, parse_template


class _Parsed:
    def __init__(self, data: bytes) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.complete = 0
        parser = httptools.HttpRequestParser(self)
        parser.feed_data(data)
        self.method = parser.get_method()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete += 1


def test_parse_template() -> None:
    assert parse_template("/a/${id}/b${user.name}") == [
        "/a/",
        Reference("id"),
        "/b",
        Reference("user", "name"),
        "",
    ]
    assert parse_template("cost: $${price} and $5") == ["cost: ${price} and $5"]
    with pytest.raises(ValueError, match="without a closing"):
        parse_template("/a/${id")
    with pytest.raises(ValueError, match="is not a variable reference"):
        parse_template("/a/${1x}")


def test_a_request_without_references_is_its_fixed_bytes() -> None:
    template = RequestTemplate("GET", "/x?a=1", [("Accept", "*/*")], "", "h:80")
    assert template.keys == ()
    assert template.fixed == encode_request("GET", "/x?a=1", [("Accept", "*/*")], b"", "h:80")
    assert template.render({}) is template.fixed  # the same object: no work per send


def test_render_path_header_and_body() -> None:
    template = RequestTemplate(
        "post",
        "/items/${id}?q=${word}",
        [("X-User", "${user.name}"), ("Content-Type", "application/json")],
        '{"id": ${id}, "note": "${word}", "é": 1}',
        "api.test",
    )
    assert template.fixed is None
    assert template.keys == ("id", "word", "user.name")
    values = {"id": "42", "word": "a b&c/d", "user.name": "Zoë"}
    parsed = _Parsed(template.render(values))
    assert parsed.complete == 1 and parsed.method == b"POST"
    # A path value is percent-encoded (except unreserved characters and /).
    assert parsed.url == b"/items/42?q=a%20b%26c/d"
    assert parsed.headers[b"host"] == b"api.test"
    assert parsed.headers[b"x-user"] == "Zoë".encode("latin-1")  # header values: Latin-1
    body = '{"id": 42, "note": "a b&c/d", "é": 1}'.encode()
    assert parsed.body == body  # the body is UTF-8; Content-Length follows it
    assert parsed.headers[b"content-length"] == str(len(body)).encode()
    # Another value, another length.
    longer = _Parsed(template.render({**values, "word": "x" * 300}))
    assert len(longer.body) == int(longer.headers[b"content-length"]) > 300


def test_bytes_body_and_host_override() -> None:
    template = RequestTemplate(
        "PUT", "/f/${n}", [("host", "other.test")], b"\x00\x01binary", "ignored"
    )
    parsed = _Parsed(template.render({"n": "7"}))
    assert parsed.url == b"/f/7" and parsed.body == b"\x00\x01binary"
    assert parsed.headers[b"host"] == b"other.test"


def test_literal_parts_are_checked_once() -> None:
    with pytest.raises(ValueError, match="not a token"):
        RequestTemplate("GET", "/${n}", [("Bad Name", "v")], "", "h")
    with pytest.raises(ValueError, match="must start with a literal /"):
        RequestTemplate("GET", "${n}", [], "", "h")
    with pytest.raises(ValueError, match="set by loadgen"):
        RequestTemplate("POST", "/${n}", [("Content-Length", "3")], "abc", "h")
