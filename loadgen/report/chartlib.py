"""The vendored chart library (uPlot), read from package data and checked against its pins.

``vendor/`` holds uPlot's minified IIFE build, its stylesheet and its MIT licence, copied
byte for byte from the npm package; ``vendor/VENDOR.json`` pins the version and the sha256 of
each file. To update: ``npm pack uplot@VERSION``, copy the three files out of ``package/``,
and rewrite VENDOR.json (version, tarball integrity from ``npm view uplot@VERSION
dist.integrity``, sha256 of each file). A file that does not match its pin is never used.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

_PACKAGE = "loadgen.report"
_FOLDER = "vendor"
# uPlot's minified build opens with a banner naming its source repository by URL; the report
# must hold no URL at all, so the banner is swapped for one naming the version and licence.
_BANNER = re.compile(r"\A/\*![^*]*\*/")


class VendorError(RuntimeError):
    """A vendored file is missing or does not match its pinned sha256."""


@dataclass(frozen=True)
class ChartLibrary:
    name: str
    version: str
    license_name: str
    script: str  # ready to inline: the banner without its URL
    stylesheet: str
    license_text: str


def manifest() -> dict[str, Any]:
    """VENDOR.json: name, version, licence and ``files: {name: {from, sha256}}``."""
    text = resources.files(_PACKAGE).joinpath(_FOLDER, "VENDOR.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def read_verified(name: str) -> bytes:
    """The bytes of one vendored file, after checking them against VENDOR.json."""
    pins = manifest()["files"]
    if name not in pins:
        raise VendorError(f"{name} is not a vendored file (VENDOR.json lists {sorted(pins)})")
    try:
        data = resources.files(_PACKAGE).joinpath(_FOLDER, name).read_bytes()
    except OSError as exc:
        raise VendorError(f"vendored file {name} cannot be read: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != pins[name]["sha256"]:
        raise VendorError(
            f"vendored file {name} has sha256 {digest}, VENDOR.json pins {pins[name]['sha256']}"
        )
    return data


@cache
def chart_library() -> ChartLibrary:
    """uPlot's script, stylesheet and licence, verified, ready to inline into a report."""
    info = manifest()
    script = read_verified("uPlot.iife.min.js").decode("utf-8")
    banner = f"/*! uPlot v{info['version']} ({info['license']} licence, reproduced below) */"
    return ChartLibrary(
        name="uPlot",
        version=info["version"],
        license_name=info["license"],
        script=_BANNER.sub(lambda _: banner, script, count=1),
        stylesheet=read_verified("uPlot.min.css").decode("utf-8"),
        license_text=read_verified("LICENSE").decode("utf-8"),
    )
