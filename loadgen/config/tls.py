"""The scenario's ``tls:`` section: TLS on every connection of a run.

    tls:
      enabled: true
      server_name: api.example.com   # SNI and the name verified (default: the target's host)
      verify: true                   # check the server's certificate (run --insecure: false)
      ca_file: ca.pem                # trust these CAs instead of the system's
      client_cert: client.pem        # present a client certificate (with client_key, or
      client_key: client.key         #   the key inside client_cert)
      min_version: "1.2"             # or "1.3"
      session_resumption: true       # resume the slot's last session on reconnects

No network here: the files are checked for readability (``check_tls``), the TLS context is
built by each shard (``loadgen.load.tls``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


def _version(value: object) -> object:
    """``min_version: 1.2`` reads as a YAML float; the versions are strings."""
    return str(value) if isinstance(value, int | float) else value


class TlsSpec(BaseModel):
    """TLS for the connections. Certificate verification is on unless ``verify: false``;
    ``server_name`` overrides the SNI name (the target's host by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    verify: bool = True
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    server_name: str | None = Field(default=None, min_length=1)
    min_version: Annotated[Literal["1.2", "1.3"], BeforeValidator(_version)] = "1.2"
    session_resumption: bool = True

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsSpec:
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs client_cert (the certificate it belongs to)")
        return self


def check_tls(tls: TlsSpec, builtin_target: str | None) -> tuple[str, str] | None:
    """(field, problem) for a TLS section that cannot be used, else None: a file that
    cannot be read, or TLS towards a built-in target (they speak plain TCP)."""
    if not tls.enabled:
        return None
    if builtin_target is not None:
        return "tls", (
            f"builtin:{builtin_target} speaks plain TCP; TLS needs a target that terminates "
            "TLS (a server, or a TLS proxy in front of a built-in target)"
        )
    for key in ("ca_file", "client_cert", "client_key"):
        path = getattr(tls, key)
        if path is None:
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            return f"tls.{key}", f"cannot read {path}: {exc.strerror or exc}"
    return None
