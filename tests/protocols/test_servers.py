"""The fixture rule for missing server binaries: skip naming the package, fail under CI."""

from __future__ import annotations

import pytest

from ..servers import require_binary

MISSING = "loadgen-no-such-server-binary"


def test_missing_binary_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install the Debian package 'pkg'"):
        require_binary(MISSING, "pkg")


def test_missing_binary_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run this test"):
        require_binary(MISSING, "pkg")


def test_present_binary_is_found() -> None:
    assert require_binary("sh", "dash").endswith("/sh")
