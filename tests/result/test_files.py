"""Writing results never destroys what is at the path (``loadgen.result.files``)."""

from __future__ import annotations

import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from loadgen.result import files
from loadgen.result.files import OutputError, keep_elsewhere, write_atomically

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /proc are POSIX")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_regular_file_is_replaced_and_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    target.write_text("old")
    target.chmod(0o640)
    assert write_atomically(target, "new") == target
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert _leftovers(tmp_path) == []


def test_a_new_path_gets_its_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "result.json"
    write_atomically(target, "{}")
    assert target.read_text() == "{}"


@posix_only
def test_a_symlink_stays_a_link_and_its_target_is_written(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_atomically(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "made.json")
    write_atomically(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "made.json").read_text() == "made"


@posix_only
def test_a_fifo_is_written_through_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    write_atomically(fifo, '{"a": 1}\n')
    reader.join(10)
    assert received == ['{"a": 1}\n']
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert _leftovers(tmp_path) == []


@posix_only
def test_a_device_node_is_written_through_not_replaced(tmp_path: Path) -> None:
    # A private copy of /dev/null: the test never risks the system's own.
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root (CAP_MKNOD)")
    write_atomically(null, "x" * 1000)
    assert stat.S_ISCHR(null.stat().st_mode)
    assert null.stat().st_rdev == os.makedev(1, 3)


@posix_only
def test_an_open_descriptor_name_is_written_through(tmp_path: Path) -> None:
    """``/dev/fd/N`` of a regular file (as ``--json /dev/stdout > out.json`` gives): the
    descriptor's file gets the text, and is the same file (not replaced by another)."""
    target = tmp_path / "out.json"
    with open(target, "w") as handle:
        inode = target.stat().st_ino
        write_atomically(f"/dev/fd/{handle.fileno()}", "through\n")
    assert target.read_text() == "through\n"
    assert target.stat().st_ino == inode


def test_a_directory_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as caught:
        write_atomically(tmp_path, "{}")
    assert str(caught.value) == f"cannot write {tmp_path}: it is a directory"
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_proc_paths_are_refused_by_name_without_leftovers() -> None:
    for path in ("/proc/self/loadgen-result.json", "/proc/self/status"):
        with pytest.raises(OutputError) as caught:
            write_atomically(path, "{}")
        assert str(caught.value).startswith(f"cannot write {path}: ")
    assert "Name:" in Path("/proc/self/status").read_text()


def test_a_path_under_a_file_is_refused_by_name(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("keep")
    with pytest.raises(OutputError, match=f"cannot write {plain}/x.json: "):
        write_atomically(plain / "x.json", "{}")
    assert plain.read_text() == "keep"


def test_keep_elsewhere_makes_a_new_file_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = keep_elsewhere("quickstart-20260101T000000Z.json", "one")
    second = keep_elsewhere("quickstart-20260101T000000Z.json", "two")
    assert first != second
    assert first.parent == files.FALLBACK_FOLDER
    assert first.name.startswith("quickstart-20260101T000000Z-kept-")
    assert first.read_text() == "one" and second.read_text() == "two"


def test_keep_elsewhere_falls_back_to_the_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").write_text("a file where the folder would be")
    kept = keep_elsewhere("run.json", "text")
    try:
        assert kept.parent == Path(files.tempfile.gettempdir())
        assert kept.read_text() == "text"
    finally:
        kept.unlink()
