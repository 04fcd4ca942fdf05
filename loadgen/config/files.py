"""Files a scenario names: request bodies (``body_file``), CSV variables (``csv``) and TLS
material (``tls.ca_file``, ``tls.client_cert``, ``tls.client_key``).

A relative path is relative to the scenario file's directory (the current directory for a
scenario from stdin or the command line); ``anchor_paths`` makes every such path absolute
before validation, so the resolved scenario (and the result) names the file that was used
and a shard process started elsewhere finds it. ``check_files`` then reads each one once,
so a missing file, a CSV without rows or a ``${csv.column}`` that is not a column is a
scenario error (file, line, field), not a failure in the middle of a run.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loadgen.config.http import HttpSpec
from loadgen.config.tls import TlsSpec
from loadgen.protocols.http_template import header_value_problem, references

#: Largest CSV file read into memory (every row is kept, to be drawn per request).
MAX_CSV_BYTES = 256 * 1024 * 1024

FieldPath = tuple[str | int, ...]


def _file_fields(document: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str, FieldPath]]:
    """(mapping, key, path) of every file field present in a raw scenario document."""
    protocol = document.get("protocol")
    http = protocol.get("http") if isinstance(protocol, dict) else None
    if isinstance(http, dict):
        yield http, "body_file", ("protocol", "http", "body_file")
        requests = http.get("requests")
        if isinstance(requests, list):
            for index, request in enumerate(requests):
                if isinstance(request, dict):
                    yield request, "body_file", ("protocol", "http", "requests", index, "body_file")
        variables = http.get("variables")
        if isinstance(variables, dict):
            for name, variable in variables.items():
                if isinstance(variable, dict):
                    yield variable, "csv", ("protocol", "http", "variables", name, "csv")
    tls = document.get("tls")
    if isinstance(tls, dict):
        for key in ("ca_file", "client_cert", "client_key"):
            yield tls, key, ("tls", key)


def anchor_paths(document: dict[str, Any], base_dir: Path) -> None:
    """Make every relative file path in ``document`` absolute, from ``base_dir``."""
    for mapping, key, _ in _file_fields(document):
        value = mapping.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            mapping[key] = str((base_dir / value).resolve())


def read_csv(path: str) -> tuple[list[str], list[tuple[str, ...]]]:
    """(columns, rows) of a CSV file whose first line names the columns. ``ValueError``
    naming the file and line for a file that cannot serve as a variable."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_CSV_BYTES:
            raise ValueError(f"{path}: larger than {MAX_CSV_BYTES // 2**20} MiB")
        text = file.read_text(encoding="utf-8-sig")  # a BOM (Excel) is not part of a name
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = next(reader, None)
    if not columns or not all(name.strip() for name in columns):
        raise ValueError(f"{path}:1: the first line must name every column")
    columns = [name.strip() for name in columns]
    for name in columns:
        if any(c in name for c in ".{}") or any(c.isspace() for c in name):
            raise ValueError(f"{path}:1: column {name!r}: no '.', braces or spaces in a name")
    if len(set(columns)) != len(columns):
        raise ValueError(f"{path}:1: a column name appears twice")
    rows: list[tuple[str, ...]] = []
    for row in reader:
        if not row:
            continue  # a blank line
        if len(row) != len(columns):
            raise ValueError(
                f"{path}:{reader.line_num}: {len(row)} fields, the header has {len(columns)}"
            )
        rows.append(tuple(row))
    if not rows:
        raise ValueError(f"{path}: no rows after the header line")
    return columns, rows


def _readable(path: str) -> str | None:
    try:
        with open(path, "rb"):
            return None
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"


def check_files(http: HttpSpec | None, tls: TlsSpec) -> tuple[FieldPath, str] | None:
    """(field path, problem) for the first file that cannot be used, else None. The TLS
    files only when TLS is on: a section kept with ``enabled: false`` (a scenario that
    runs against plain and TLS targets alike) names files this run never opens."""
    for key in ("ca_file", "client_cert", "client_key") if tls.enabled else ():
        value = getattr(tls, key)
        problem = _readable(value) if value is not None else None
        if problem:
            return ("tls", key), problem
    if http is None:
        return None
    base: FieldPath = ("protocol", "http")
    if http.body_file is not None and (problem := _readable(http.body_file)):
        return (*base, "body_file"), problem
    for index, request in enumerate(http.requests or []):
        if request.body_file is not None and (problem := _readable(request.body_file)):
            return (*base, "requests", index, "body_file"), problem
    used = _references(http)
    for name, variable in http.variables.items():
        if variable.csv is None:
            continue
        where = (*base, "variables", name, "csv")
        try:
            columns, rows = read_csv(variable.csv)
        except ValueError as exc:
            return where, str(exc)
        for column, in_header in sorted(used.get(name, set()), key=str):
            if column is None and len(columns) > 1:
                return where, (
                    f"${{{name}}}: the file has columns {', '.join(columns)}; write "
                    f"${{{name}.COLUMN}}"
                )
            if column is not None and column not in columns:
                return where, (
                    f"${{{name}.{column}}}: no column {column!r} (the file has "
                    f"{', '.join(columns)})"
                )
            if in_header:  # every cell of it must fit in a header
                index = 0 if column is None else columns.index(column)
                for number, row in enumerate(rows, start=1):
                    problem = header_value_problem(row[index])
                    if problem:
                        return where, f"{variable.csv} data row {number}: in a header: {problem}"
    return None


def _references(http: HttpSpec) -> dict[str, set[tuple[str | None, bool]]]:
    """(column or None, used in a header) of each reference, by variable."""
    used: dict[str, set[tuple[str | None, bool]]] = {}
    for request in http.request_list():
        texts = [(request.path or "", False), (request.body or "", False)]
        texts += [(value, True) for value in {**http.headers, **request.headers}.values()]
        for text, in_header in texts:
            for reference in references(text):
                used.setdefault(reference.variable, set()).add((reference.column, in_header))
    return used
