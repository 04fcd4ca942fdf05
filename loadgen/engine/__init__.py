"""Engine backends and the one place a backend is chosen.

``select_backend("auto")`` prefers the native completion port of the OS (IOCP on Windows,
io_uring on Linux) and falls back to epoll with a one-line notice when io_uring is off
(ENOSYS on old kernels, EPERM under seccomp, ``kernel.io_uring_disabled``). Asking for a
backend by name never falls back: it raises ``BackendUnavailable`` saying why.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from loadgen.engine.base import Backend, BackendUnavailable, Completion, ErrorKind

BACKEND_NAMES = ("iocp", "io_uring", "epoll")
CHOICES = ("auto", *BACKEND_NAMES)

__all__ = [
    "BACKEND_NAMES",
    "CHOICES",
    "Backend",
    "BackendUnavailable",
    "Completion",
    "ErrorKind",
    "available_backends",
    "select_backend",
]


def _require_platform(prefix: str, message: str) -> None:
    """Raise BackendUnavailable unless ``sys.platform`` starts with ``prefix``.

    A function rather than an inline ``if sys.platform``: type checkers would treat the
    code after an inline check as unreachable on the other OS.
    """
    if not sys.platform.startswith(prefix):
        raise BackendUnavailable(f"{message}; this is {sys.platform}")


def _make_iocp() -> Backend:
    _require_platform("win32", "IOCP needs Windows (or Windows CPython under Wine)")
    from loadgen.engine.iocp import IocpBackend

    return IocpBackend()


def _make_io_uring() -> Backend:
    _require_platform("linux", "io_uring is a Linux interface")
    from loadgen.engine.uring import UringBackend

    return UringBackend()


def _make_epoll() -> Backend:
    _require_platform("linux", "epoll is a Linux interface")
    from loadgen.engine.epoll import EpollBackend

    return EpollBackend()


_FACTORIES: dict[str, Callable[[], Backend]] = {
    "iocp": _make_iocp,
    "io_uring": _make_io_uring,
    "epoll": _make_epoll,
}


def _auto_order() -> tuple[str, ...]:
    if sys.platform == "win32":
        return ("iocp",)
    return ("io_uring", "epoll")


def select_backend(name: str = "auto", *, notice: Callable[[str], None] | None = None) -> Backend:
    """Make a backend by name, or the best one here for ``"auto"``.

    ``notice`` receives the one-line reason when ``auto`` had to fall back.
    """
    if name == "auto":
        reasons: list[str] = []
        for candidate in _auto_order():
            try:
                backend = _FACTORIES[candidate]()
            except BackendUnavailable as exc:
                reasons.append(f"{candidate}: {exc}")
                continue
            if reasons and notice is not None:
                notice(f"using {candidate} backend ({'; '.join(reasons)})")
            return backend
        raise BackendUnavailable("no engine backend works here: " + "; ".join(reasons))
    factory = _FACTORIES.get(name)
    if factory is None:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of: {', '.join(CHOICES)}")
    return factory()


def available_backends(names: Sequence[str] | None = None) -> dict[str, str | None]:
    """Each backend name mapped to ``None`` if it works here, else the reason it does not."""
    status: dict[str, str | None] = {}
    for name in names or BACKEND_NAMES:
        factory = _FACTORIES[name]
        try:
            backend = factory()
        except BackendUnavailable as exc:
            status[name] = str(exc)
        else:
            backend.shutdown()
            status[name] = None
    return status
