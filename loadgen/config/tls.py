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

No network here: the files are loaded into a throw-away context once (``check_tls``: a
scenario error names the field; relative paths are the scenario file's, as for every file it
names: ``loadgen.config.files``), the TLS context of a run is built by each shard
(``loadgen.load.tls``).
"""

from __future__ import annotations

import ssl
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


class EncryptedKeyError(ValueError):
    """The client key asks for a passphrase: a load test has nobody to type it."""


def no_passphrase() -> str:
    """``load_cert_chain``'s passphrase callback: OpenSSL would otherwise prompt on the
    terminal, in the middle of a run."""
    raise EncryptedKeyError(
        "the private key is encrypted (it asks for a passphrase); give it decrypted, e.g. "
        "openssl pkey -in KEY -out PLAIN-KEY"
    )


def check_tls(tls: TlsSpec, builtin_target: str | None) -> tuple[str, str] | None:
    """(field, problem) for a TLS section that cannot be used, else None: TLS towards a
    built-in target (they speak plain TCP), or a file OpenSSL cannot use (not PEM, a key
    that does not match its certificate, an encrypted key). The files are readable by now
    (``loadgen.config.files.check_files`` read them first)."""
    if not tls.enabled:
        return None
    if builtin_target is not None:
        return "tls", (
            f"builtin:{builtin_target} speaks plain TCP; TLS needs a target that terminates "
            "TLS (a server, or a TLS proxy in front of a built-in target)"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.ca_file)
        except ssl.SSLError as exc:
            return "tls.ca_file", f"{tls.ca_file}: no CA certificate OpenSSL can use ({exc})"
    if tls.client_cert is not None:
        try:
            context.load_cert_chain(tls.client_cert, tls.client_key, password=no_passphrase)
        except EncryptedKeyError as exc:
            return "tls.client_key" if tls.client_key else "tls.client_cert", str(exc)
        except ssl.SSLError as exc:
            where = (
                tls.client_cert
                if tls.client_key is None
                else f"{tls.client_cert} with {tls.client_key}"
            )
            return "tls.client_cert", (
                f"{where}: not a certificate and its private key OpenSSL can use ({exc}); "
                "give client_key unless the key is in the same file"
            )
    return None
