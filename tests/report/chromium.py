"""Headless Chromium (Debian's ``chromium``) as the tests' browser: load a page, dump its DOM."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# Flags: no sandbox (root in CI), no GPU, and nothing that would talk to the network by itself.
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
    "--window-size=1280,2000",
)


@dataclass(frozen=True)
class LoadedPage:
    dom: str
    log: str  # Chromium's stderr: page console messages appear as ":CONSOLE(line)]" entries

    def root_attribute(self, name: str) -> str | None:
        """An attribute of the dumped page's <html> element."""
        tag = re.search(r"<html\b[^>]*>", self.dom)
        assert tag is not None, self.dom[:500]
        match = re.search(rf'\s{re.escape(name)}="([^"]*)"', tag.group(0))
        return match.group(1) if match else None

    @property
    def console_messages(self) -> list[str]:
        return [line for line in self.log.splitlines() if ":CONSOLE(" in line]


def browser() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return path


def load(page: Path, profile: Path, *extra: str) -> LoadedPage:
    """Open ``page`` from disk, let its scripts run, and return the DOM as they left it."""
    completed = subprocess.run(
        [browser(), *_FLAGS, f"--user-data-dir={profile}", *extra, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return LoadedPage(completed.stdout, completed.stderr)
