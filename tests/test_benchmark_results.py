"""Every benchmark result the README (or benchmarks/results/README.md) links to is in the
repository: results are kept out of git unless listed in benchmarks/results/.gitignore, so a
quoted run left off that list would be a dead link in a clean checkout."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"benchmarks/results/(\d{8}T\d{6}Z-[\w.-]+\.json)")


def test_every_quoted_benchmark_result_is_committed() -> None:
    quoted = set()
    for doc in (ROOT / "README.md", ROOT / "benchmarks" / "results" / "README.md"):
        quoted |= set(LINK.findall(doc.read_text(encoding="utf-8")))
    assert quoted  # the README quotes its benchmark runs
    if (ROOT / ".git").exists():  # a checkout: what git tracks is what a clone gets
        tracked = subprocess.run(
            ["git", "ls-files", "benchmarks/results"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    else:  # an export: only committed files are here
        tracked = [f"benchmarks/results/{p.name}" for p in (ROOT / "benchmarks/results").iterdir()]
    missing = sorted(name for name in quoted if f"benchmarks/results/{name}" not in tracked)
    assert missing == [], (
        f"quoted but not committed (add them to benchmarks/results/.gitignore's list): {missing}"
    )
