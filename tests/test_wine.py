"""The Windows side of the suite, run for real: Windows CPython (python.org's embeddable
build) under Wine, through ``scripts/windows-python``.

It runs the backend contract suite (parametrized to ``iocp`` there), the Windows ABI and
IOCP tests, the Windows memory sampler's tests, the quickstart end to end on IOCP in both
receive modes, the stream patterns, the refusal of io_uring-only receive features and HTTPS
on IOCP (against nginx over TLS, started here on the Linux side), and checks that the IOCP
cases really ran and passed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import nginx_tls
from tests.tls_certs import make_tls_files

ROOT = Path(__file__).resolve().parent.parent
WINDOWS_TESTS = [
    "tests/engine",
    "tests/stats/test_memory_windows.py",
    "tests/engine/test_iocp_e2e.py",
    "tests/study/test_recv_modes_windows.py",  # the receive-mode study completes on IOCP
    "tests/load/test_streams.py",
    "tests/load/test_receive_features.py",
    "tests/load/test_tls_windows.py",  # HTTPS on IOCP against nginx on the Linux side
]
#: Provisioning from a cold cache takes ~2 minutes; a warm run ~1 minute.
TIMEOUT_S = 1500


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="drives Wine from Linux")
def test_windows_suite_under_wine(tmp_path: Path) -> None:
    if shutil.which("wine") is None and not os.environ.get("CI"):
        pytest.skip(
            "Wine is not installed; scripts/windows-python installs it (apt) and CI runs this"
        )
    command = [str(ROOT / "scripts" / "windows-python"), "-m", "pytest", *WINDOWS_TESTS]
    command += ["-v", "-p", "no:cacheprovider", "-o", "addopts="]
    certs = make_tls_files(tmp_path / "certs")
    with nginx_tls(tmp_path, certs) as server:  # the TLS target, on the Linux side
        env = dict(os.environ)
        env["LOADGEN_TLS_TARGET"] = f"127.0.0.1:{server.port}"
        env["LOADGEN_TLS_CA_PEM"] = certs.ca.read_text()
        completed = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
            env=env,
        )
    output = completed.stdout + completed.stderr
    tail = "\n".join(output.splitlines()[-60:])
    assert completed.returncode == 0, tail
    iocp_cases = re.findall(r"^(tests/engine/test_contract\.py::\S+\[iocp\]) (\w+)", output, re.M)
    assert len(iocp_cases) >= 11, tail
    assert {outcome for _, outcome in iocp_cases} == {"PASSED"}, iocp_cases
    e2e = re.findall(r"^tests/engine/test_iocp_e2e\.py::\S+ (\w+)", output, re.M)
    assert e2e == ["PASSED", "PASSED"], tail
    study = re.findall(r"^tests/study/test_recv_modes_windows\.py::\S+ (\w+)", output, re.M)
    assert study == ["PASSED"], tail
    tls = re.findall(r"^tests/load/test_tls_windows\.py::\S+ (\w+)", output, re.M)
    assert tls == ["PASSED"] * 3, tail
    assert "sys.platform" not in tail  # sanity: the summary line is pytest's, not a crash
    assert re.search(r"(\d+) passed", tail), tail
