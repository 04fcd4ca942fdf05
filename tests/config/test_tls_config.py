"""The scenario's ``tls:`` section: defaults, and every refusal naming the file, the line and
the field (files read and loaded before a run, never in the middle of one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from loadgen.config.plan import LoadPlan
from loadgen.config.scenario import ScenarioError, parse_scenario
from loadgen.run.wiring import client_config, tls_config
from tests.tls_certs import TlsFiles, make_tls_files

HEAD = "name: t\ntarget: 127.0.0.1:8443\nprotocol: http\nconnections: 2\nduration: 1s\n"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("certs"))


def refusal(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "tls.yaml")
    return str(caught.value)


def test_defaults_are_off_and_verifying() -> None:
    scenario = parse_scenario(HEAD)
    assert not scenario.tls.enabled
    plan = LoadPlan.from_scenario(scenario)
    assert client_config(scenario, plan, [("127.0.0.1", 8443)]).tls is None
    on = parse_scenario(HEAD + "tls: {enabled: true}\n")
    tls = tls_config(on)
    assert tls is not None
    assert tls.verify and tls.session_resumption and tls.min_version == "1.2"
    assert tls.server_names == ["127.0.0.1"]  # the target's host
    assert tls.alpn == ("http/1.1",)  # HTTP asks for http/1.1
    assert tls.handshake_timeout_s == 5.0  # the connect timeout


def test_server_name_min_version_and_alpn_per_protocol() -> None:
    text = HEAD.replace("protocol: http", "protocol: redis")
    text += "tls: {enabled: true, server_name: cache.internal, min_version: 1.3}\n"
    tls = tls_config(parse_scenario(text))
    assert tls is not None
    assert tls.server_names == ["cache.internal"] and tls.min_version == "1.3"
    assert tls.alpn == ()  # RESP: no ALPN


def test_each_target_is_its_own_server_name() -> None:
    text = HEAD.replace("target: 127.0.0.1:8443", "target: [127.0.0.1:8443, '[::1]:8443']")
    tls = tls_config(parse_scenario(text + "tls: {enabled: true}\n"))
    assert tls is not None and tls.server_names == ["127.0.0.1", "::1"]


def test_a_missing_file_names_its_line_and_field(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    text = HEAD + f"tls:\n  enabled: true\n  ca_file: {missing}\n"
    assert (
        refusal(text)
        == f"tls.yaml:8: tls.ca_file: cannot read {missing}: No such file or directory"
    )


def test_files_of_a_disabled_section_are_not_read(tmp_path: Path) -> None:
    """``enabled: false`` keeps the section for later: its files are not this run's."""
    missing = tmp_path / "nowhere.pem"
    text = HEAD + f"tls:\n  enabled: false\n  ca_file: {missing}\n  client_cert: {missing}\n"
    scenario = parse_scenario(text, "tls.yaml")
    assert not scenario.tls.enabled
    assert tls_config(scenario) is None
    # Turned on, the same section is refused for its file.
    on = text.replace("enabled: false", "enabled: true")
    assert refusal(on).startswith(f"tls.yaml:8: tls.ca_file: cannot read {missing}")


def test_a_file_that_is_not_a_certificate(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    text = HEAD + f"tls:\n  enabled: true\n  ca_file: {junk}\n"
    assert refusal(text).startswith(f"tls.yaml:8: tls.ca_file: {junk}: no CA certificate")


def test_a_key_that_does_not_match_its_certificate(certs: TlsFiles) -> None:
    text = HEAD + (
        f"tls:\n  enabled: true\n  client_cert: {certs.client_cert}\n"
        f"  client_key: {certs.server_key}\n"
    )
    message = refusal(text)
    assert message.startswith("tls.yaml:8: tls.client_cert: "), message
    assert "not a certificate and its private key OpenSSL can use" in message


def test_an_encrypted_key_is_refused_not_prompted_for(certs: TlsFiles, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(certs.client_key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    text = HEAD + (
        f"tls:\n  enabled: true\n  client_cert: {certs.client_cert}\n  client_key: {encrypted}\n"
    )
    message = refusal(text)
    assert message.startswith("tls.yaml:9: tls.client_key: the private key is encrypted"), message


def test_a_client_key_needs_its_certificate(certs: TlsFiles) -> None:
    text = HEAD + f"tls:\n  enabled: true\n  client_key: {certs.client_key}\n"
    assert "client_key needs client_cert" in refusal(text)


def test_unknown_keys_and_versions() -> None:
    assert "did you mean 'verify'" in refusal(HEAD + "tls: {enabled: true, verfy: false}\n")
    assert "tls.min_version" in refusal(HEAD + "tls: {enabled: true, min_version: 1.1}\n")


def test_tls_towards_a_builtin_target_is_refused() -> None:
    text = "name: t\ntarget: builtin:http\nprotocol: http\nconnections: 1\nduration: 1s\n"
    text += "tls: {enabled: true}\n"
    assert refusal(text).startswith("tls.yaml:6: tls: builtin:http speaks plain TCP")
