"""The Windows x64 ABI the IOCP backend and the memory sampler call through ctypes.

Only the ABI lives here: structure layouts, prototypes, constants, ``raise_winerror()``.
Names keep Microsoft's spelling (``OVERLAPPED_ENTRY``, ``SO_UPDATE_CONNECT_CONTEXT``) so they
can be grepped against the SDK headers (minwinbase.h, winsock2.h, mswsock.h, psapi.h).

* The module imports everywhere. The DLLs are bound lazily, on first use, and only on
  Windows, so the layouts can be checked by the plain Linux test suite.
* Every structure uses fixed-width fields (``c_uint32`` for DWORD/ULONG, ``c_uint64`` for
  ULONG_PTR/SIZE_T) because ``c_ulong`` is 4 bytes on Windows but 8 on Linux: the sizes
  and offsets must come out the same on both (tests/engine/test_win32_abi.py).
* Every prototype is declared with ``use_last_error=True``: ctypes then saves the thread's
  last error right after the call. Reading it later through ``GetLastError`` is unreliable
  (the interpreter makes its own Win32 calls in between; a failed AcceptEx/ConnectEx then
  appears to have failed with a stale 0).
* Every HANDLE/SOCKET-returning function has an explicit pointer-sized ``restype``; the
  ctypes default (C int) truncates 64-bit handles.
* Hot-path pointer arguments (OVERLAPPED*, WSABUF*, DWORD*) are declared ``c_void_p`` so
  callers pass precomputed integer addresses: ``ctypes.byref`` per call costs more than the
  rest of the call's argument conversion.
* ConnectEx and AcceptEx are not exported by ws2_32.dll: their addresses are asked of the
  provider with ``WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER)`` and a GUID, then called
  through the ``LPFN_CONNECTEX``/``LPFN_ACCEPTEX`` function types below. On x64 there is
  one calling convention, so ``CFUNCTYPE`` is the same as ``WINFUNCTYPE`` and keeps this
  module importable off Windows.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import uuid
from collections.abc import Callable
from enum import IntEnum, IntFlag
from typing import Any, Final, NoReturn, Protocol, cast

# --- C types (fixed width; Windows LLP64 data model) ---------------------------------------
BOOL = ctypes.c_int32
BYTE = ctypes.c_uint8
WORD = ctypes.c_uint16
DWORD = ctypes.c_uint32
ULONG = ctypes.c_uint32
LONG = ctypes.c_int32
NTSTATUS = ctypes.c_int32
ULONG_PTR = ctypes.c_uint64
SIZE_T = ctypes.c_uint64
HANDLE = ctypes.c_void_p  # returns int, or None for NULL
SOCKET = ctypes.c_uint64  # UINT_PTR; INVALID_SOCKET is ~0
LPVOID = ctypes.c_void_p

INVALID_HANDLE_VALUE: Final = (1 << 64) - 1  # (HANDLE)-1 as the unsigned value ctypes returns
INVALID_SOCKET: Final = (1 << 64) - 1  # (SOCKET)~0
SOCKET_ERROR: Final = -1
INFINITE: Final = 0xFFFFFFFF  # a DWORD timeout meaning "wait forever"


# --- structures ------------------------------------------------------------------------------
class OVERLAPPED(ctypes.Structure):
    """minwinbase.h. The kernel writes Internal (NTSTATUS) and InternalHigh (bytes) into it
    when the operation completes, so it must stay alive and unmoved until then."""

    _fields_ = (
        ("Internal", ULONG_PTR),
        ("InternalHigh", ULONG_PTR),
        ("Offset", DWORD),  # union with `PVOID Pointer`; unused for sockets
        ("OffsetHigh", DWORD),
        ("hEvent", HANDLE),
    )


class OVERLAPPED_ENTRY(ctypes.Structure):
    """One completion packet as GetQueuedCompletionStatusEx returns it (32 bytes)."""

    _fields_ = (
        ("lpCompletionKey", ULONG_PTR),
        ("lpOverlapped", ctypes.c_void_p),
        ("Internal", ULONG_PTR),  # the operation's NTSTATUS
        ("dwNumberOfBytesTransferred", DWORD),
    )


class WSABUF(ctypes.Structure):
    _fields_ = (("len", ULONG), ("buf", ctypes.c_void_p))


class in_addr(ctypes.Structure):
    _fields_ = (("s_addr", ctypes.c_uint8 * 4),)  # network byte order


class sockaddr_in(ctypes.Structure):
    _fields_ = (
        ("sin_family", ctypes.c_uint16),
        ("sin_port", ctypes.c_uint16),  # network byte order
        ("sin_addr", in_addr),
        ("sin_zero", ctypes.c_uint8 * 8),
    )


class in6_addr(ctypes.Structure):
    _fields_ = (("Byte", ctypes.c_uint8 * 16),)


class sockaddr_in6(ctypes.Structure):
    _fields_ = (
        ("sin6_family", ctypes.c_uint16),
        ("sin6_port", ctypes.c_uint16),  # network byte order
        ("sin6_flowinfo", ctypes.c_uint32),
        ("sin6_addr", in6_addr),
        ("sin6_scope_id", ctypes.c_uint32),
    )


class GUID(ctypes.Structure):
    _fields_ = (
        ("Data1", ctypes.c_uint32),
        ("Data2", ctypes.c_uint16),
        ("Data3", ctypes.c_uint16),
        ("Data4", ctypes.c_uint8 * 8),
    )

    @classmethod
    def from_string(cls, text: str) -> GUID:
        """``"{25a207b9-...}"`` → GUID. Microsoft's layout is uuid's little-endian bytes."""
        return cls.from_buffer_copy(uuid.UUID(text).bytes_le)

    def __str__(self) -> str:
        return "{" + str(uuid.UUID(bytes_le=bytes(self))) + "}"


WSADESCRIPTION_LEN: Final = 256
WSASYS_STATUS_LEN: Final = 128


class WSADATA(ctypes.Structure):
    """winsock2.h, _WIN64 field order (the pointer moved up, unlike the 32-bit layout)."""

    _fields_ = (
        ("wVersion", WORD),
        ("wHighVersion", WORD),
        ("iMaxSockets", ctypes.c_uint16),
        ("iMaxUdpDg", ctypes.c_uint16),
        ("lpVendorInfo", ctypes.c_void_p),
        ("szDescription", ctypes.c_char * (WSADESCRIPTION_LEN + 1)),
        ("szSystemStatus", ctypes.c_char * (WSASYS_STATUS_LEN + 1)),
    )


class LINGER(ctypes.Structure):
    """Two u_shorts on Windows (two ints on Linux)."""

    _fields_ = (("l_onoff", ctypes.c_uint16), ("l_linger", ctypes.c_uint16))


class PROCESS_MEMORY_COUNTERS(ctypes.Structure):
    """psapi.h; sizes in bytes. The quota fields are what the process is charged for."""

    _fields_ = (
        ("cb", DWORD),
        ("PageFaultCount", DWORD),
        ("PeakWorkingSetSize", SIZE_T),
        ("WorkingSetSize", SIZE_T),
        ("QuotaPeakPagedPoolUsage", SIZE_T),
        ("QuotaPagedPoolUsage", SIZE_T),
        ("QuotaPeakNonPagedPoolUsage", SIZE_T),
        ("QuotaNonPagedPoolUsage", SIZE_T),
        ("PagefileUsage", SIZE_T),
        ("PeakPagefileUsage", SIZE_T),
    )


class PROCESS_MEMORY_COUNTERS_EX(ctypes.Structure):
    _fields_ = (*PROCESS_MEMORY_COUNTERS._fields_, ("PrivateUsage", SIZE_T))


class PERFORMANCE_INFORMATION(ctypes.Structure):
    """psapi.h; the Kernel*/Commit*/Physical* fields count pages of PageSize bytes."""

    _fields_ = (
        ("cb", DWORD),
        ("CommitTotal", SIZE_T),
        ("CommitLimit", SIZE_T),
        ("CommitPeak", SIZE_T),
        ("PhysicalTotal", SIZE_T),
        ("PhysicalAvailable", SIZE_T),
        ("SystemCache", SIZE_T),
        ("KernelTotal", SIZE_T),
        ("KernelPaged", SIZE_T),
        ("KernelNonpaged", SIZE_T),
        ("PageSize", SIZE_T),
        ("HandleCount", DWORD),
        ("ProcessCount", DWORD),
        ("ThreadCount", DWORD),
    )


class SYSTEM_POOLTAG(ctypes.Structure):
    """One pool tag as NtQuerySystemInformation(SystemPoolTagInformation) lists it."""

    _fields_ = (
        ("Tag", ctypes.c_char * 4),  # e.g. b"AfdB"; union with ULONG TagUlong
        ("PagedAllocs", ULONG),
        ("PagedFrees", ULONG),
        ("PagedUsed", SIZE_T),
        ("NonPagedAllocs", ULONG),
        ("NonPagedFrees", ULONG),
        ("NonPagedUsed", SIZE_T),
    )


class TIMECAPS(ctypes.Structure):
    """timeapi.h: the timer periods timeBeginPeriod accepts, in ms."""

    _fields_ = (("wPeriodMin", ctypes.c_uint32), ("wPeriodMax", ctypes.c_uint32))


class SYSTEM_POOLTAG_INFORMATION(ctypes.Structure):
    """Header of the class-22 answer: ``Count`` then ``Count`` SYSTEM_POOLTAG entries."""

    _fields_ = (("Count", ULONG), ("TagInfo", SYSTEM_POOLTAG * 1))


# --- constants ---------------------------------------------------------------------------------
class WinError(IntEnum):
    """Win32 and Winsock error codes the backend tells apart (winerror.h, winsock2.h)."""

    ERROR_SUCCESS = 0
    ERROR_INVALID_HANDLE = 6
    ERROR_NOT_ENOUGH_MEMORY = 8
    ERROR_OUTOFMEMORY = 14
    ERROR_NETNAME_DELETED = 64  # NTSTATUS connection reset → Win32
    ERROR_SEM_TIMEOUT = 121  # NTSTATUS IO_TIMEOUT → Win32
    WAIT_TIMEOUT = 258
    ERROR_OPERATION_ABORTED = 995  # cancelled by CancelIoEx or closesocket
    ERROR_IO_PENDING = 997  # == WSA_IO_PENDING
    ERROR_NOT_FOUND = 1168  # CancelIoEx: nothing pending for that OVERLAPPED
    ERROR_CONNECTION_REFUSED = 1225
    ERROR_NETWORK_UNREACHABLE = 1231
    ERROR_HOST_UNREACHABLE = 1232
    ERROR_PORT_UNREACHABLE = 1234  # NTSTATUS PORT_UNREACHABLE: nothing at that endpoint
    ERROR_CONNECTION_ABORTED = 1236
    ERROR_NO_SYSTEM_RESOURCES = 1450  # NTSTATUS INSUFFICIENT_RESOURCES: pool ran out
    ERROR_WORKING_SET_QUOTA = 1453  # pages could not be locked (a posted buffer's MDL)
    ERROR_NOT_ENOUGH_QUOTA = 1816
    WSAEINTR = 10004
    WSAEINVAL = 10022
    WSAEWOULDBLOCK = 10035
    WSAENOTSOCK = 10038
    WSAENOPROTOOPT = 10042
    WSAEADDRINUSE = 10048
    WSAEADDRNOTAVAIL = 10049
    WSAENETDOWN = 10050
    WSAENETUNREACH = 10051
    WSAECONNABORTED = 10053
    WSAECONNRESET = 10054
    WSAENOBUFS = 10055  # e.g. the locked-pages limit ran out under posted receives
    WSAENOTCONN = 10057
    WSAESHUTDOWN = 10058
    WSAETIMEDOUT = 10060
    WSAECONNREFUSED = 10061
    WSAEHOSTUNREACH = 10065
    WSANOTINITIALISED = 10093


WSA_IO_PENDING: Final = WinError.ERROR_IO_PENDING


class AddressFamily(IntEnum):
    AF_INET = 2
    AF_INET6 = 23  # 10 on Linux: never use the host's socket.AF_INET6 to build a sockaddr


class SocketType(IntEnum):
    SOCK_STREAM = 1


class IpProtocol(IntEnum):
    IPPROTO_TCP = 6


class SocketLevel(IntEnum):
    SOL_SOCKET = 0xFFFF
    IPPROTO_TCP = 6


class SocketOption(IntEnum):
    TCP_NODELAY = 0x0001  # level IPPROTO_TCP
    SO_REUSEADDR = 0x0004
    SO_LINGER = 0x0080
    SO_RCVBUF = 0x1002
    SO_ERROR = 0x1007
    SO_PROTOCOL_INFOW = 0x2005
    #: Defer the local port of an explicitly bound (port 0) socket to connect time and share
    #: it across destinations (Windows 10 1703+). Without it ConnectEx's bind takes a port
    #: of its own from the machine-wide dynamic range (16,384 by default) per socket.
    SO_REUSE_UNICASTPORT = 0x3007
    SO_UPDATE_ACCEPT_CONTEXT = 0x700B  # after AcceptEx: inherit the listener's properties
    SO_UPDATE_CONNECT_CONTEXT = 0x7010  # after ConnectEx: make getpeername/shutdown work


class WsaFlag(IntFlag):
    WSA_FLAG_OVERLAPPED = 0x01
    WSA_FLAG_NO_HANDLE_INHERIT = 0x80


class Ioctl(IntEnum):
    FIONBIO = 0x8004667E  # _IOW('f', 126, u_long): set non-blocking mode
    FIONREAD = 0x4004667F  # _IOR('f', 127, u_long): bytes ready to read
    SIO_GET_EXTENSION_FUNCTION_POINTER = 0xC8000006  # _WSAIORW(IOC_WS2, 6)


class CompletionMode(IntFlag):
    """SetFileCompletionNotificationModes flags (winbase.h)."""

    FILE_SKIP_COMPLETION_PORT_ON_SUCCESS = 0x1
    FILE_SKIP_SET_EVENT_ON_HANDLE = 0x2


class MsgFlag(IntFlag):
    MSG_PEEK = 0x2


#: WSAPROTOCOL_INFOW.dwServiceFlags1 bit: the provider's sockets are real NT file handles.
#: Only then is FILE_SKIP_COMPLETION_PORT_ON_SUCCESS safe (a non-IFS layered provider may
#: still queue a packet for an operation that succeeded at once).
XP1_IFS_HANDLES: Final = 0x00020000
#: sizeof(WSAPROTOCOL_INFOW) on x64: 5 DWORDs, GUID, DWORD, WSAPROTOCOLCHAIN (32), 9 ints,
#: 2 DWORDs, WCHAR szProtocol[256].
WSAPROTOCOL_INFOW_SIZE: Final = 628

WSAID_CONNECTEX: Final = "{25a207b9-ddf3-4660-8ee9-76e58c74063e}"
WSAID_ACCEPTEX: Final = "{b5367df1-cbac-11cf-95ca-00805f48a192}"
#: AcceptEx wants room for each address plus 16 bytes (its own bookkeeping).
ACCEPTEX_ADDRESS_LEN: Final = ctypes.sizeof(sockaddr_in6) + 16

#: listen(): a backlog given as SOMAXCONN_HINT(n) = -n asks for n (clamped to 200..65535);
#: a plain number is capped near 200 by the provider, and a full backlog answers with RST.
SOMAXCONN_HINT_MIN: Final = 200
SOMAXCONN_HINT_MAX: Final = 65535
#: timeBeginPeriod / timeEndPeriod results (mmsystem.h).
TIMERR_NOERROR: Final = 0
TIMERR_NOCANDO: Final = 97

#: NtQuerySystemInformation classes and statuses.
SystemPoolTagInformation: Final = 22
STATUS_SUCCESS: Final = 0
STATUS_INFO_LENGTH_MISMATCH: Final = -0x3FFFFFFC  # 0xC0000004 as a signed NTSTATUS
STATUS_NOT_IMPLEMENTED: Final = -0x3FFFFFFE  # 0xC0000002
STATUS_INVALID_INFO_CLASS: Final = -0x3FFFFFFD  # 0xC0000003 (Wine answers class 22 so)
STATUS_ACCESS_DENIED: Final = -0x3FFFFFDE  # 0xC0000022

MAKEWORD_2_2: Final = 0x0202  # Winsock 2.2, the version every Windows since 98 provides


# --- function pointer types for the Winsock extension functions --------------------------------
#: BOOL ConnectEx(SOCKET s, const sockaddr *name, int namelen, PVOID lpSendBuffer,
#:                DWORD dwSendDataLength, LPDWORD lpdwBytesSent, LPOVERLAPPED lpOverlapped)
LPFN_CONNECTEX = ctypes.CFUNCTYPE(
    BOOL, SOCKET, LPVOID, ctypes.c_int, LPVOID, DWORD, LPVOID, LPVOID, use_last_error=True
)
#: BOOL AcceptEx(SOCKET sListenSocket, SOCKET sAcceptSocket, PVOID lpOutputBuffer,
#:               DWORD dwReceiveDataLength, DWORD dwLocalAddressLength,
#:               DWORD dwRemoteAddressLength, LPDWORD lpdwBytesReceived,
#:               LPOVERLAPPED lpOverlapped)
LPFN_ACCEPTEX = ctypes.CFUNCTYPE(
    BOOL, SOCKET, SOCKET, LPVOID, DWORD, DWORD, DWORD, LPVOID, LPVOID, use_last_error=True
)


# --- typed views of the DLLs --------------------------------------------------------------------
# ctypes gives every foreign function the type Any; these Protocols give the callers real
# signatures (what ctypes returns for each restype: c_void_p → int | None, ints → int).
class Kernel32(Protocol):
    def CreateIoCompletionPort(
        self,
        FileHandle: int,
        ExistingCompletionPort: int | None,
        CompletionKey: int,
        NumberOfConcurrentThreads: int,
        /,
    ) -> int | None: ...
    def GetQueuedCompletionStatusEx(
        self,
        CompletionPort: int,
        lpCompletionPortEntries: int,
        ulCount: int,
        ulNumEntriesRemoved: int,
        dwMilliseconds: int,
        fAlertable: int,
        /,
    ) -> int: ...
    def PostQueuedCompletionStatus(
        self,
        CompletionPort: int,
        dwNumberOfBytesTransferred: int,
        dwCompletionKey: int,
        lpOverlapped: int | None,
        /,
    ) -> int: ...
    def CancelIoEx(self, hFile: int, lpOverlapped: int | None, /) -> int: ...
    def CloseHandle(self, hObject: int, /) -> int: ...
    def SetFileCompletionNotificationModes(self, FileHandle: int, Flags: int, /) -> int: ...
    def GetCurrentProcess(self, /) -> int | None: ...
    def K32GetProcessMemoryInfo(self, Process: int, ppsmemCounters: Any, cb: int, /) -> int: ...
    def K32GetPerformanceInfo(self, pPerformanceInformation: Any, cb: int, /) -> int: ...


class Ws2_32(Protocol):
    def WSAStartup(self, wVersionRequested: int, lpWSAData: Any, /) -> int: ...
    def WSACleanup(self, /) -> int: ...
    def WSASocketW(
        self,
        af: int,
        type: int,
        protocol: int,
        lpProtocolInfo: int | None,
        g: int,
        dwFlags: int,
        /,
    ) -> int: ...
    def WSAIoctl(
        self,
        s: int,
        dwIoControlCode: int,
        lpvInBuffer: Any,
        cbInBuffer: int,
        lpvOutBuffer: Any,
        cbOutBuffer: int,
        lpcbBytesReturned: Any,
        lpOverlapped: int | None,
        lpCompletionRoutine: int | None,
        /,
    ) -> int: ...
    def WSASend(
        self,
        s: int,
        lpBuffers: int,
        dwBufferCount: int,
        lpNumberOfBytesSent: int,
        dwFlags: int,
        lpOverlapped: int,
        lpCompletionRoutine: int | None,
        /,
    ) -> int: ...
    def WSARecv(
        self,
        s: int,
        lpBuffers: int,
        dwBufferCount: int,
        lpNumberOfBytesRecvd: int,
        lpFlags: int,
        lpOverlapped: int,
        lpCompletionRoutine: int | None,
        /,
    ) -> int: ...
    def bind(self, s: int, name: Any, namelen: int, /) -> int: ...
    def listen(self, s: int, backlog: int, /) -> int: ...
    def getsockname(self, s: int, name: Any, namelen: Any, /) -> int: ...
    def setsockopt(self, s: int, level: int, optname: int, optval: Any, optlen: int, /) -> int: ...
    def getsockopt(self, s: int, level: int, optname: int, optval: Any, optlen: Any, /) -> int: ...
    def ioctlsocket(self, s: int, cmd: int, argp: Any, /) -> int: ...
    def recv(self, s: int, buf: int, len: int, flags: int, /) -> int: ...
    def closesocket(self, s: int, /) -> int: ...


class Ntdll(Protocol):
    def NtQuerySystemInformation(
        self,
        SystemInformationClass: int,
        SystemInformation: Any,
        SystemInformationLength: int,
        ReturnLength: Any,
        /,
    ) -> int: ...
    def RtlNtStatusToDosError(self, Status: int, /) -> int: ...
    def NtQueryTimerResolution(
        self, MinimumResolution: Any, MaximumResolution: Any, CurrentResolution: Any, /
    ) -> int: ...


class Winmm(Protocol):
    def timeBeginPeriod(self, uPeriod: int, /) -> int: ...
    def timeEndPeriod(self, uPeriod: int, /) -> int: ...
    def timeGetDevCaps(self, ptc: Any, cbtc: int, /) -> int: ...


_P = ctypes.POINTER
_PROTOTYPES: Final[dict[str, dict[str, tuple[Any, tuple[Any, ...]]]]] = {
    "kernel32": {
        "CreateIoCompletionPort": (HANDLE, (HANDLE, HANDLE, ULONG_PTR, DWORD)),
        "GetQueuedCompletionStatusEx": (BOOL, (HANDLE, LPVOID, ULONG, LPVOID, DWORD, BOOL)),
        "PostQueuedCompletionStatus": (BOOL, (HANDLE, DWORD, ULONG_PTR, LPVOID)),
        "CancelIoEx": (BOOL, (HANDLE, LPVOID)),
        "CloseHandle": (BOOL, (HANDLE,)),
        "SetFileCompletionNotificationModes": (BOOL, (HANDLE, ctypes.c_uint8)),
        "GetCurrentProcess": (HANDLE, ()),
        "K32GetProcessMemoryInfo": (BOOL, (HANDLE, _P(PROCESS_MEMORY_COUNTERS_EX), DWORD)),
        "K32GetPerformanceInfo": (BOOL, (_P(PERFORMANCE_INFORMATION), DWORD)),
    },
    "ws2_32": {
        "WSAStartup": (ctypes.c_int, (WORD, _P(WSADATA))),
        "WSACleanup": (ctypes.c_int, ()),
        "WSASocketW": (
            SOCKET,
            (ctypes.c_int, ctypes.c_int, ctypes.c_int, LPVOID, ctypes.c_uint, DWORD),
        ),
        "WSAIoctl": (
            ctypes.c_int,
            (SOCKET, DWORD, LPVOID, DWORD, LPVOID, DWORD, _P(DWORD), LPVOID, LPVOID),
        ),
        "WSASend": (ctypes.c_int, (SOCKET, LPVOID, DWORD, LPVOID, DWORD, LPVOID, LPVOID)),
        "WSARecv": (ctypes.c_int, (SOCKET, LPVOID, DWORD, LPVOID, LPVOID, LPVOID, LPVOID)),
        "bind": (ctypes.c_int, (SOCKET, LPVOID, ctypes.c_int)),
        "listen": (ctypes.c_int, (SOCKET, ctypes.c_int)),
        "getsockname": (ctypes.c_int, (SOCKET, LPVOID, _P(ctypes.c_int))),
        "setsockopt": (ctypes.c_int, (SOCKET, ctypes.c_int, ctypes.c_int, LPVOID, ctypes.c_int)),
        "getsockopt": (
            ctypes.c_int,
            (SOCKET, ctypes.c_int, ctypes.c_int, LPVOID, _P(ctypes.c_int)),
        ),
        # cmd is a C `long` holding FIONBIO = 0x8004667E: declared unsigned so the value
        # passes without an overflow; the bits are the same.
        "ioctlsocket": (ctypes.c_int, (SOCKET, ctypes.c_uint32, _P(ctypes.c_uint32))),
        "recv": (ctypes.c_int, (SOCKET, LPVOID, ctypes.c_int, ctypes.c_int)),
        "closesocket": (ctypes.c_int, (SOCKET,)),
    },
    "ntdll": {
        "NtQuerySystemInformation": (NTSTATUS, (ULONG, LPVOID, ULONG, _P(ULONG))),
        "RtlNtStatusToDosError": (ULONG, (NTSTATUS,)),
        # Undocumented but stable since NT 3.1 (Sysinternals' ClockRes reads it): the
        # system timer's coarsest, finest and current interval, in 100 ns units.
        "NtQueryTimerResolution": (NTSTATUS, (_P(ULONG), _P(ULONG), _P(ULONG))),
    },
    "winmm": {
        "timeBeginPeriod": (ctypes.c_uint32, (ctypes.c_uint32,)),
        "timeEndPeriod": (ctypes.c_uint32, (ctypes.c_uint32,)),
        "timeGetDevCaps": (ctypes.c_uint32, (_P(TIMECAPS), ctypes.c_uint32)),
    },
}


def _bind(name: str) -> Any:
    """Load one DLL with ``use_last_error=True`` and declare its prototypes."""
    if sys.platform == "win32":
        dll = ctypes.WinDLL(name, use_last_error=True)
        for func_name, (restype, argtypes) in _PROTOTYPES[name].items():
            func = getattr(dll, func_name)
            func.restype = restype
            func.argtypes = argtypes
        return dll
    raise OSError(f"{name}.dll exists only on Windows (this is {sys.platform})")


@functools.cache
def kernel32() -> Kernel32:
    return cast(Kernel32, _bind("kernel32"))


@functools.cache
def ws2_32() -> Ws2_32:
    return cast(Ws2_32, _bind("ws2_32"))


@functools.cache
def ntdll() -> Ntdll:
    return cast(Ntdll, _bind("ntdll"))


@functools.cache
def winmm() -> Winmm:
    return cast(Winmm, _bind("winmm"))


@functools.cache
def wine_version() -> str | None:
    """Wine's version when this Windows process runs under Wine, else None.

    Wine's ntdll exports ``wine_get_version``; Windows' does not. Results that Wine cannot
    produce (kernel pool usage) are reported as not measurable when this is set.
    """
    if sys.platform == "win32":
        getter = getattr(ctypes.WinDLL("ntdll"), "wine_get_version", None)
        if getter is None:
            return None
        getter.restype = ctypes.c_char_p
        getter.argtypes = ()
        version = getter()
        return version.decode("ascii", "replace") if version else "unknown"
    return None


def last_error_getter() -> Callable[[], int]:
    """``ctypes.get_last_error`` (the error saved by the last ``use_last_error`` call)."""
    if sys.platform == "win32":
        return ctypes.get_last_error
    raise OSError(f"no Win32 last error on {sys.platform}")


def describe(code: int) -> str:
    """The system's message for a Win32/WSA error code, with the code's name when known."""
    try:
        name = WinError(code).name
    except ValueError:
        name = f"error {code}"
    if sys.platform == "win32":
        return f"{name}: {ctypes.FormatError(code).strip()}"
    return name


def raise_winerror(code: int | None = None, what: str = "") -> NoReturn:
    """Raise ``OSError`` for a Win32/WSA error (default: the saved last error).

    On Windows the exception's ``winerror`` is ``code`` and CPython maps it to the matching
    subclass (``ConnectionRefusedError`` for WSAECONNREFUSED ...).
    """
    if code is None:
        code = last_error_getter()()
    message = f"{what}: {describe(code)}" if what else describe(code)
    raise OSError(None, message, None, code)
