"""Every test here starts Dask clusters of real worker processes (tens of seconds each on two
cores): they are ``slow``, run by CI's second pytest pass (``pytest -m slow``)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/distributed/" in item.nodeid:
            item.add_marker(pytest.mark.slow)
