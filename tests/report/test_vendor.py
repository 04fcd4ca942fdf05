"""The vendored chart library matches its pins and inlines without any URL."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from loadgen.report import chartlib
from loadgen.report.chartlib import VendorError, chart_library, manifest, read_verified

from .urls import external_references


def test_every_vendored_file_matches_its_pinned_sha256() -> None:
    folder = resources.files("loadgen.report").joinpath("vendor")
    present = {entry.name for entry in folder.iterdir()} - {"VENDOR.json"}
    pins = manifest()["files"]
    assert set(pins) == present == {"uPlot.iife.min.js", "uPlot.min.css", "LICENSE"}
    for name, pin in pins.items():
        data = folder.joinpath(name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == pin["sha256"], name
    assert manifest()["version"] == "1.6.32" and manifest()["license"] == "MIT"


def test_a_file_that_differs_from_its_pin_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = manifest()
    wrong = {**pinned, "files": {**pinned["files"], "LICENSE": {"sha256": "0" * 64}}}
    monkeypatch.setattr(chartlib, "manifest", lambda: wrong)
    with pytest.raises(VendorError, match="LICENSE has sha256"):
        read_verified("LICENSE")
    with pytest.raises(VendorError, match="not a vendored file"):
        read_verified("jquery.js")


def test_inlined_library_carries_no_url_but_keeps_its_licence() -> None:
    raw = read_verified("uPlot.iife.min.js").decode()
    assert external_references(raw)  # the published banner names its repository by URL
    library = chart_library()
    assert external_references(library.script) == []
    assert library.script.startswith("/*! uPlot v1.6.32 (MIT licence, reproduced below) */")
    assert library.script.removeprefix(library.script.split("*/")[0] + "*/") == raw.removeprefix(
        raw.split("*/")[0] + "*/"
    )
    assert "Copyright (c) 2022 Leon Sorokin" in library.license_text
