"""Writing result files: JSON results, reports and exports end up on disk through here.

What is already at the path is never destroyed by writing there:

* a regular file (or a new path) is replaced atomically: the text goes to a temporary file
  beside it, which is renamed over it, so a crash or Ctrl-C mid-write never leaves half a
  file where a good one was (POSIX ``rename`` and Windows ``MoveFileEx`` with
  ``MOVEFILE_REPLACE_EXISTING``, both through ``os.replace``, swap the name in one step);
* a symlink is followed: its target is written (the link stays a link);
* anything else that exists (a device such as ``/dev/null``, a FIFO, ``/dev/stdout``, a
  shell's ``>(...)``) is written through, opened and written like ``>`` in a shell; renaming
  a file over it would replace the device or pipe with a regular file.

A path that cannot be written (a directory, ``/proc/...``, no permission, a full disk)
raises ``OutputError`` naming the path, and no temporary file is left behind;
``keep_elsewhere`` then saves the text somewhere it can be found again.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import tempfile
from pathlib import Path


class OutputError(OSError):
    """A file that could not be written; ``str()`` names the path and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = str(path)
        self.reason = reason


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def write_atomically(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` without destroying what is there (see the module
    docstring); returns the path written. Raises ``OutputError`` when it cannot."""
    target = Path(path)
    try:
        existing = target.stat()  # follows symlinks: what a write would reach
    except FileNotFoundError:
        existing = None
    except OSError as exc:  # e.g. a path through a file, or no permission to look
        raise OutputError(target, _reason(exc)) from None
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise OutputError(target, "it is a directory")
    if existing is not None and (
        not stat.S_ISREG(existing.st_mode) or _DESCRIPTOR_PATH.match(target.as_posix())
    ):
        _write_through(target, text)
        return target
    # A regular file or a new path: replace the file a symlink points to, not the link.
    real = Path(os.path.realpath(target))
    _replace(real, text, shown=target, mode=None if existing is None else existing.st_mode)
    return target


def _write_through(target: Path, text: str) -> None:
    try:
        with open(target, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise OutputError(target, _reason(exc)) from None


def _replace(real: Path, text: str, shown: Path, mode: int | None) -> None:
    """Write a temporary file beside ``real`` and rename it over ``real``; on any failure
    the temporary file is removed and ``OutputError`` names ``shown`` (the path asked for)."""
    temporary: Path | None = None
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        temporary = _write_new(real.parent, f".{real.name}.", ".tmp", text)
        if mode is not None:  # keep the permissions of the file it replaces
            os.chmod(temporary, stat.S_IMODE(mode))
        os.replace(temporary, real)
        temporary = None
    except OSError as exc:
        raise OutputError(shown, _reason(exc)) from None
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def _write_new(folder: Path, prefix: str, suffix: str, text: str) -> Path:
    """Create a file of a new, unique name in ``folder`` and write ``text`` to it. Created
    with mode 0666 less the umask, as any file the user makes (``mkstemp`` makes 0600)."""
    for _ in range(100):  # a name already taken is tried again with another random part
        path = folder / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666)
        except FileExistsError:
            continue
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return path
    raise FileExistsError(f"no free temporary name in {folder}")


#: Windows: a descriptor from ``os.open`` is in the C runtime's text mode unless told, and
#: would turn "\n" into "\r\n" a second time under Python's own text layer.
_O_BINARY = getattr(os, "O_BINARY", 0)
#: Names of an open descriptor (``/dev/stdout``, bash's ``>(...)`` as ``/dev/fd/63``): written
#: through even when the descriptor is a regular file (``> out.json``), since replacing the
#: file would leave the descriptor's owner writing to a deleted one.
_DESCRIPTOR_PATH = re.compile(r"^/(dev/(stdout|stderr|fd/\d+)|proc/(self|\d+)/fd/\d+)$")


#: Where ``keep_elsewhere`` tries first (the default folder of results), then the system's
#: temporary folder.
FALLBACK_FOLDER = Path("reports")


def keep_elsewhere(name: str, text: str) -> Path:
    """Save ``text`` as a new file named after ``name`` in ``reports/`` or, failing that, the
    temporary folder; returns where it went. Raises ``OutputError`` when neither works."""
    stem, suffix = Path(name).stem or "result", Path(name).suffix or ".json"
    problems: list[str] = []
    for folder in (FALLBACK_FOLDER, Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return _write_new(folder, f"{stem}-kept-", suffix, text)
        except OSError as exc:
            problems.append(f"{folder}: {_reason(exc)}")
    raise OutputError(name, "; ".join(problems))
