"""Target addresses as a scenario writes them. No network here (names are resolved at the
start of a run: ``loadgen.run.resolve``).

* ``HOST:PORT`` and ``[v6addr]:PORT``: a TCP address, any protocol;
* ``http://host[:port]/path?query`` and ``https://...``: an HTTP target. The URL gives the
  protocol (HTTP), the ``Host`` header (the host as written, with the port unless it is the
  scheme's default: what curl and browsers send), the default request path (with its
  query) and, for ``https``, TLS. A fragment (``#...``) is never sent, as by any client.
* ``builtin:NAME``: a built-in target that the run starts itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

#: The schemes a target URL may have, and each one's default port.
URL_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class TargetUrl:
    """A parsed ``http://`` or ``https://`` target."""

    scheme: str  # "http" or "https"
    host: str  # a name or an IP address (IPv6 without brackets), lower case
    port: int
    path: str  # the path and query to request by default ("/" at least)

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def authority(self) -> str:
        """The ``Host`` header: host, and ``:port`` unless it is the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == URL_PORTS[self.scheme] else f"{host}:{self.port}"


def is_url(text: str) -> bool:
    """True for text that is meant as a URL (``scheme://...``), supported or not."""
    return "://" in text


def parse_url(text: str) -> TargetUrl:
    """``http(s)://host[:port]/path?query`` → ``TargetUrl``; ``ValueError`` saying why not."""
    scheme = text.partition("://")[0].lower()
    if scheme not in URL_PORTS:
        raise ValueError(
            f"unsupported URL scheme {scheme!r} in {text!r} (http:// and https:// are)"
        )
    parts = urlsplit(text.strip())
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"credentials in a URL are not sent ({text!r}): give an Authorization header "
            "in http.headers instead"
        )
    host = parts.hostname
    if not host:
        raise ValueError(f"URL {text!r} has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"URL {text!r} has an invalid port (1-65535)") from None
    if port == 0:
        raise ValueError(f"URL {text!r} has an invalid port (1-65535)")
    if not host.isascii():
        raise ValueError(f"URL host {host!r} is not ASCII: write it in its xn-- (IDNA) form")
    if parts.netloc.startswith("[") or ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"URL {text!r}: {host!r} is not an IPv6 address") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if any(c in path for c in " \t\r\n\0"):
        raise ValueError(f"URL path {path!r} has a space or control character: percent-encode it")
    return TargetUrl(scheme, host, port if port is not None else URL_PORTS[scheme], path)


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6addr]:port`` → (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(
            f"expected HOST:PORT, a URL (http://HOST:PORT/PATH) or builtin:NAME, got {text!r}"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def parse_target(text: str) -> tuple[str, int]:
    """(host, port) of a network target written either way (a URL or HOST:PORT)."""
    if is_url(text):
        url = parse_url(text)
        return url.host, url.port
    return parse_address(text)


def expand_address_range(text: str) -> list[str]:
    """``127.0.0.1-127.0.0.8`` → eight addresses; a single address → itself."""
    first, sep, last = text.partition("-")
    try:
        start = ipaddress.ip_address(first.strip())
        end = ipaddress.ip_address(last.strip()) if sep else start
    except ValueError:
        raise ValueError(f"expected an IP address or a range A-B, got {text!r}") from None
    if start.version != end.version or int(end) < int(start):
        raise ValueError(f"address range {text!r} is empty or mixes IPv4 and IPv6")
    if int(end) - int(start) >= 65536:
        raise ValueError(f"address range {text!r} is larger than 65,536 addresses")
    # start + offset keeps the family: ip_address(int) would read a small IPv6 such as
    # ::1 (= 1) as IPv4 0.0.0.1.
    return [str(start + offset) for offset in range(int(end) - int(start) + 1)]


def check_url_targets(targets: Sequence[str], protocol: str, tls: bool) -> tuple[str, str] | None:
    """(field, problem) for URL targets that do not go together or with the scenario's
    ``protocol`` and ``tls.enabled``: all URLs or none, one scheme and path, HTTP, TLS as
    the scheme says. Else None."""
    urls = [parse_url(target) for target in targets if is_url(target)]
    if not urls:
        return None
    if len(urls) != len(targets):
        return "target", "a list mixes URLs and HOST:PORT targets; write every one as a URL"
    if len({(url.scheme, url.path) for url in urls}) > 1:
        return "target", (
            "the URLs of a list must share the scheme and the path (connections are spread "
            "over their hosts); give other paths in http.requests"
        )
    if protocol != "http":
        return "target", (
            f"a URL target speaks HTTP, but protocol is {protocol}: write the "
            "target as HOST:PORT for that protocol"
        )
    if urls[0].tls and not tls:
        return "tls", "tls.enabled is false, but the target is an https:// URL"
    if not urls[0].tls and tls:
        return "tls", "tls.enabled is true, but the target is an http:// URL (use https://)"
    return None
