"""Facts about the process and host a run happens on, for the result's environment.

``platform.platform()`` queries WMI on Windows, which crashes under Wine, so the OS string
is built from ``sys.getwindowsversion()`` there. The descriptor limit is raised toward the
hard limit before a shard opens its sockets (Windows has no such limit for sockets).
"""

from __future__ import annotations

import platform
import sys


def os_description() -> str:
    """``platform.platform()`` crashes under Wine (WMI), so build the string by hand."""
    if sys.platform == "win32":
        version = sys.getwindowsversion()
        return f"Windows-{version.major}.{version.minor}.{version.build}"
    return f"{platform.system()}-{platform.release()}-{platform.machine()}"


def raise_fd_limit(needed: int) -> None:
    """Lift the soft descriptor limit toward the hard one when ``needed`` exceeds it."""
    try:
        import resource
    except ImportError:
        return  # Windows: sockets are not counted against a descriptor limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))
