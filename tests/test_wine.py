"""The Windows side of the suite, run for real: Windows CPython (python.org's embeddable
build) under Wine, through ``scripts/windows-python``.

It runs the backend contract suite (parametrized to ``iocp`` there), the Windows ABI and
IOCP tests (handle reuse, the accept pool, cleanup), the Windows memory sampler's tests, the
measuring clock and the timer, the quickstart end to end on IOCP in both receive modes
(distinct, non-zero latencies), the stream patterns, the refusal of io_uring-only receive
features, OS error codes and refused binds, IPv6 and mixed-family targets, the dynamic port
range, ``doctor``, Ctrl-Break and piped console output, HTTPS on IOCP (against nginx over
TLS, started here on the Linux side), the adversarial suite (every misbehaving target in
both receive modes, a target killed and restarted), and checks that the Windows cases really ran and
passed.

``python tests/test_wine.py`` prints the list of test paths (the Windows CI job runs the
same list on real Windows).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WINDOWS_TESTS = [
    "tests/engine",  # the contract suite, IOCP facts and bookkeeping, the quickstart e2e
    "tests/stats/test_memory_windows.py",
    "tests/stats/test_clock.py",
    "tests/study/test_recv_modes_windows.py",  # the receive-mode study completes on IOCP
    "tests/load/test_streams.py",
    "tests/load/test_receive_features.py",
    "tests/load/test_error_codes.py",
    "tests/load/test_ipv6.py",  # IPv6 and mixed-family targets on IOCP
    "tests/run/test_windows_ports.py",
    "tests/cli/test_windows_cli.py",
    "tests/load/test_tls_windows.py",  # HTTPS on IOCP against nginx on the Linux side
    "tests/adversarial",  # every misbehaving target, and one killed, on IOCP in both modes
]
#: Files whose Windows tests must all have run and passed under Wine: how many pass there
#: (the rest check the answer off Windows and skip).
MUST_PASS = {
    "tests/engine/test_iocp_bookkeeping.py": 10,
    "tests/load/test_ipv6.py": 7,
    "tests/stats/test_clock.py": 3,
    "tests/run/test_windows_ports.py": 3,
    "tests/cli/test_windows_cli.py": 5,
    "tests/load/test_tls_windows.py": 4,
    # 12 targets x 2 receive modes; the killed target in both modes (the Linux pairs skip).
    "tests/adversarial/test_misbehaving_targets.py": 24,
    "tests/adversarial/test_killed_target.py": 2,
    "tests/adversarial/test_unasked_responses.py": 2,
    "tests/adversarial/test_cut_sends.py": 2,
}
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
    # Imported here: ``python tests/test_wine.py`` (the list for Windows CI) needs neither.
    from tests.servers import nginx_tls
    from tests.tls_certs import make_tls_files

    certs = make_tls_files(tmp_path / "certs")
    with nginx_tls(tmp_path, certs) as server:  # the TLS target, on the Linux side
        env = dict(os.environ)
        env["LOADGEN_TLS_TARGET"] = f"127.0.0.1:{server.port}"
        env["LOADGEN_TLS_CA_PEM"] = certs.ca.read_text()
        env["LOADGEN_TLS_SERVER_PEM"] = certs.server_cert.read_text() + certs.server_key.read_text()
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
    for path, passing in MUST_PASS.items():
        pattern = rf"^{re.escape(path)}::(\S+) (\w+)"
        outcomes = list(dict(re.findall(pattern, output, re.M)).values())
        assert outcomes.count("PASSED") == passing, (path, outcomes)
        assert set(outcomes) <= {"PASSED", "SKIPPED"}, (path, outcomes)
    codes = re.findall(r"^tests/load/test_error_codes\.py::\S+\[iocp\] (\w+)", output, re.M)
    assert codes == ["PASSED", "PASSED"], tail
    assert "sys.platform" not in tail  # sanity: the summary line is pytest's, not a crash
    assert re.search(r"(\d+) passed", tail), tail


if __name__ == "__main__":
    print(" ".join(WINDOWS_TESTS))
