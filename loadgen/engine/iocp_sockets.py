"""Making and setting up the IOCP backend's sockets (the backend runs their operations).

* Every socket is overlapped (WSA_FLAG_OVERLAPPED), not inherited by child processes, tied
  to the engine's completion port with ``CompletionKey.SOCKET``, and non-blocking
  (``FIONBIO``: overlapped calls ignore it; ``recv_now`` relies on it).
* ``FILE_SKIP_COMPLETION_PORT_ON_SUCCESS`` is set only when the provider's sockets are real
  kernel handles (``XP1_IFS_HANDLES`` in its WSAPROTOCOL_INFOW, asked once per family): a
  non-IFS layered provider may still queue a packet for an operation that succeeded at once.
* ``ConnectEx``/``AcceptEx`` are not exported: their addresses come from
  ``WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER)`` with a GUID, once per family.
* Client sockets bound to port 0 get ``SO_REUSE_UNICASTPORT`` first (``defer_port``).
* ``listen``'s backlog is given as ``SOMAXCONN_HINT(n)`` (``somaxconn_hint``).
"""

from __future__ import annotations

import ctypes
from enum import IntEnum

from loadgen.engine import win32
from loadgen.engine.iocp_slots import DWORD, Sock, parse_sockaddr


class CompletionKey(IntEnum):
    """The key every socket is tied to the port with; other keys are not ours."""

    SOCKET = 1


def somaxconn_hint(backlog: int) -> int:
    """``listen``'s backlog as SOMAXCONN_HINT(n) = -n: a plain number is capped near 200 by
    Windows, the hint is honoured within 200..65535 (the bounds applied here too)."""
    return -min(max(backlog, win32.SOMAXCONN_HINT_MIN), win32.SOMAXCONN_HINT_MAX)


class Winsock:
    """Socket making, options and extension lookups for one completion port."""

    def __init__(self, ws2: win32.Ws2_32, k32: win32.Kernel32, port: int) -> None:
        self._ws2 = ws2
        self._k32 = k32
        self._port = port
        self._extensions: dict[tuple[int, str], int] = {}
        self._ifs: dict[int, bool] = {}
        #: SO_REUSE_UNICASTPORT: None until first tried, then whether this Windows has it.
        self.reuse_unicast_port: bool | None = None

    def new_socket(self, family: int) -> Sock:
        ws2 = self._ws2
        handle = ws2.WSASocketW(
            family,
            win32.SocketType.SOCK_STREAM,
            win32.IpProtocol.IPPROTO_TCP,
            None,
            0,
            win32.WsaFlag.WSA_FLAG_OVERLAPPED | win32.WsaFlag.WSA_FLAG_NO_HANDLE_INHERIT,
        )
        if handle == win32.INVALID_SOCKET:
            win32.raise_winerror(what="WSASocketW")
        try:
            if (
                self._k32.CreateIoCompletionPort(handle, self._port, CompletionKey.SOCKET, 0)
                is None
            ):
                win32.raise_winerror(what="CreateIoCompletionPort(socket)")
            skip = self.skip_is_safe(handle, family)
            if skip and not self._k32.SetFileCompletionNotificationModes(
                handle,
                win32.CompletionMode.FILE_SKIP_COMPLETION_PORT_ON_SUCCESS
                | win32.CompletionMode.FILE_SKIP_SET_EVENT_ON_HANDLE,
            ):
                win32.raise_winerror(what="SetFileCompletionNotificationModes")
            one = ctypes.c_uint32(1)
            if ws2.ioctlsocket(handle, win32.Ioctl.FIONBIO, ctypes.byref(one)):
                win32.raise_winerror(what="ioctlsocket(FIONBIO)")
        except BaseException:
            ws2.closesocket(handle)
            raise
        return Sock(handle, family, skip)

    def skip_is_safe(self, handle: int, family: int) -> bool:
        """XP1_IFS_HANDLES of the socket's provider, asked once per family."""
        known = self._ifs.get(family)
        if known is None:
            info = (ctypes.c_char * win32.WSAPROTOCOL_INFOW_SIZE)()
            size = ctypes.c_int(ctypes.sizeof(info))
            rc = self._ws2.getsockopt(
                handle,
                win32.SocketLevel.SOL_SOCKET,
                win32.SocketOption.SO_PROTOCOL_INFOW,
                info,
                ctypes.byref(size),
            )
            # dwServiceFlags1 is the structure's first DWORD.
            known = rc == 0 and bool(DWORD.unpack_from(info)[0] & win32.XP1_IFS_HANDLES)
            self._ifs[family] = known
        return known

    def set_option(self, handle: int, level: int, option: int, value: bytes) -> int:
        return self._ws2.setsockopt(handle, level, option, value, len(value))

    def defer_port(self, handle: int) -> None:
        """SO_REUSE_UNICASTPORT before a client socket's bind to port 0: the port is then
        picked at connect time and shared across targets, instead of each socket taking
        one of the machine's dynamic ports at bind (16,384 by default: ~16k connections
        in all, whatever the targets). Older Windows refuse the option (WSAENOPROTOOPT):
        asked once, then the bind goes on without it."""
        if self.reuse_unicast_port is False:
            return
        ok = (
            self.set_option(
                handle,
                win32.SocketLevel.SOL_SOCKET,
                win32.SocketOption.SO_REUSE_UNICASTPORT,
                b"\1\0\0\0",
            )
            == 0
        )
        if self.reuse_unicast_port is None:
            self.reuse_unicast_port = ok

    def local_address(self, handle: int) -> tuple[str, int]:
        name = (ctypes.c_char * ctypes.sizeof(win32.sockaddr_in6))()
        size = ctypes.c_int(ctypes.sizeof(name))
        if self._ws2.getsockname(handle, name, ctypes.byref(size)):
            win32.raise_winerror(what="getsockname")
        return parse_sockaddr(bytes(name))

    def extension(self, handle: int, family: int, guid_text: str) -> int:
        """Address of ConnectEx/AcceptEx for this provider (asked once per family)."""
        key = (family, guid_text)
        pointer = self._extensions.get(key)
        if pointer is None:
            guid = win32.GUID.from_string(guid_text)
            out = ctypes.c_void_p()
            returned = win32.DWORD()
            if (
                self._ws2.WSAIoctl(
                    handle,
                    win32.Ioctl.SIO_GET_EXTENSION_FUNCTION_POINTER,
                    ctypes.byref(guid),
                    ctypes.sizeof(guid),
                    ctypes.byref(out),
                    ctypes.sizeof(out),
                    ctypes.byref(returned),
                    None,
                    None,
                )
                or not out.value
            ):
                win32.raise_winerror(what=f"WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER {guid})")
            pointer = self._extensions[key] = out.value
        return pointer
