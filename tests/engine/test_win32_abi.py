"""Layouts of the Windows x64 structures, checked on every OS.

The expected sizes and offsets are the ones the official CPython build reports under
Windows (and the SDK headers give), so a field typed with a host-width
C type (``c_ulong`` is 8 bytes on Linux) fails here on Linux CI before it corrupts memory
on Windows. The tests at the end bind the real DLLs and run only on Windows.
"""

from __future__ import annotations

import ctypes
import sys

import pytest

from loadgen.engine import win32

LAYOUTS: dict[type[ctypes.Structure], tuple[int, dict[str, int]]] = {
    win32.OVERLAPPED: (
        32,
        {"Internal": 0, "InternalHigh": 8, "Offset": 16, "OffsetHigh": 20, "hEvent": 24},
    ),
    win32.OVERLAPPED_ENTRY: (
        32,
        {
            "lpCompletionKey": 0,
            "lpOverlapped": 8,
            "Internal": 16,
            "dwNumberOfBytesTransferred": 24,
        },
    ),
    win32.WSABUF: (16, {"len": 0, "buf": 8}),
    win32.sockaddr_in: (16, {"sin_family": 0, "sin_port": 2, "sin_addr": 4, "sin_zero": 8}),
    win32.sockaddr_in6: (
        28,
        {"sin6_family": 0, "sin6_port": 2, "sin6_flowinfo": 4, "sin6_addr": 8, "sin6_scope_id": 24},
    ),
    win32.GUID: (16, {"Data1": 0, "Data2": 4, "Data3": 6, "Data4": 8}),
    win32.WSADATA: (
        408,
        {
            "wVersion": 0,
            "wHighVersion": 2,
            "iMaxSockets": 4,
            "iMaxUdpDg": 6,
            "lpVendorInfo": 8,
            "szDescription": 16,
            "szSystemStatus": 273,
        },
    ),
    win32.LINGER: (4, {"l_onoff": 0, "l_linger": 2}),
    win32.PROCESS_MEMORY_COUNTERS: (
        72,
        {
            "cb": 0,
            "PageFaultCount": 4,
            "PeakWorkingSetSize": 8,
            "WorkingSetSize": 16,
            "QuotaPeakPagedPoolUsage": 24,
            "QuotaPagedPoolUsage": 32,
            "QuotaPeakNonPagedPoolUsage": 40,
            "QuotaNonPagedPoolUsage": 48,
            "PagefileUsage": 56,
            "PeakPagefileUsage": 64,
        },
    ),
    win32.PROCESS_MEMORY_COUNTERS_EX: (
        80,
        {"QuotaNonPagedPoolUsage": 48, "PrivateUsage": 72},
    ),
    win32.PERFORMANCE_INFORMATION: (
        104,
        {
            "cb": 0,
            "CommitTotal": 8,
            "PhysicalTotal": 32,
            "KernelTotal": 56,
            "KernelPaged": 64,
            "KernelNonpaged": 72,
            "PageSize": 80,
            "HandleCount": 88,
            "ProcessCount": 92,
            "ThreadCount": 96,
        },
    ),
    win32.SYSTEM_POOLTAG: (
        40,
        {
            "Tag": 0,
            "PagedAllocs": 4,
            "PagedFrees": 8,
            "PagedUsed": 16,
            "NonPagedAllocs": 24,
            "NonPagedFrees": 28,
            "NonPagedUsed": 32,
        },
    ),
    win32.SYSTEM_POOLTAG_INFORMATION: (48, {"Count": 0, "TagInfo": 8}),
}


@pytest.mark.parametrize("struct", list(LAYOUTS), ids=lambda s: s.__name__)
def test_layout(struct: type[ctypes.Structure]) -> None:
    size, offsets = LAYOUTS[struct]
    assert ctypes.sizeof(struct) == size
    for field, offset in offsets.items():
        assert getattr(struct, field).offset == offset, field


def test_constants_from_the_sdk() -> None:
    assert win32.Ioctl.SIO_GET_EXTENSION_FUNCTION_POINTER == 0xC8000006
    assert win32.SocketOption.SO_UPDATE_CONNECT_CONTEXT == 0x7010
    assert win32.SocketOption.SO_UPDATE_ACCEPT_CONTEXT == 0x700B
    assert win32.CompletionMode.FILE_SKIP_COMPLETION_PORT_ON_SUCCESS == 1
    assert win32.WSA_IO_PENDING == 997
    assert win32.WinError.WSAEWOULDBLOCK == 10035
    assert win32.WinError.WSAENOBUFS == 10055
    assert win32.AddressFamily.AF_INET6 == 23
    assert win32.ACCEPTEX_ADDRESS_LEN == 44


def test_guid_round_trip_uses_microsoft_byte_order() -> None:
    guid = win32.GUID.from_string(win32.WSAID_CONNECTEX)
    assert guid.Data1 == 0x25A207B9
    assert guid.Data2 == 0xDDF3
    assert guid.Data3 == 0x4660
    assert bytes(guid.Data4) == bytes.fromhex("8ee976e58c74063e")
    assert str(guid) == win32.WSAID_CONNECTEX
    assert str(win32.GUID.from_string(win32.WSAID_ACCEPTEX)) == win32.WSAID_ACCEPTEX


def test_error_description_names_the_code() -> None:
    assert win32.describe(10061).startswith("WSAECONNREFUSED")
    assert win32.describe(123456).startswith("error 123456")
    with pytest.raises(OSError, match="connect: WSAECONNREFUSED") as info:
        win32.raise_winerror(10061, "connect")
    if sys.platform == "win32":
        assert isinstance(info.value, ConnectionRefusedError)
        assert info.value.winerror == 10061


@pytest.mark.skipif(sys.platform == "win32", reason="checks the off-Windows behaviour")
def test_dlls_are_not_bound_off_windows() -> None:
    with pytest.raises(OSError, match="only on Windows"):
        win32.kernel32()


windows_only = pytest.mark.skipif(
    sys.platform != "win32",
    reason="binds kernel32/ws2_32: needs Windows (or scripts/windows-python)",
)


@windows_only
def test_winsock_extension_functions_resolve() -> None:
    ws2 = win32.ws2_32()
    data = win32.WSADATA()
    assert ws2.WSAStartup(win32.MAKEWORD_2_2, ctypes.byref(data)) == 0
    try:
        assert data.wVersion == win32.MAKEWORD_2_2
        sock = ws2.WSASocketW(
            win32.AddressFamily.AF_INET,
            win32.SocketType.SOCK_STREAM,
            win32.IpProtocol.IPPROTO_TCP,
            None,
            0,
            win32.WsaFlag.WSA_FLAG_OVERLAPPED,
        )
        assert sock != win32.INVALID_SOCKET
        try:
            for text in (win32.WSAID_CONNECTEX, win32.WSAID_ACCEPTEX):
                guid = win32.GUID.from_string(text)
                pointer = ctypes.c_void_p()
                returned = win32.DWORD()
                rc = ws2.WSAIoctl(
                    sock,
                    win32.Ioctl.SIO_GET_EXTENSION_FUNCTION_POINTER,
                    ctypes.byref(guid),
                    ctypes.sizeof(guid),
                    ctypes.byref(pointer),
                    ctypes.sizeof(pointer),
                    ctypes.byref(returned),
                    None,
                    None,
                )
                assert rc == 0, win32.describe(win32.last_error_getter()())
                assert pointer.value and returned.value == 8
        finally:
            assert ws2.closesocket(sock) == 0
    finally:
        ws2.WSACleanup()


@windows_only
def test_handles_keep_all_64_bits() -> None:
    kernel32 = win32.kernel32()
    # GetCurrentProcess returns the pseudo-handle (HANDLE)-1: with the default int restype
    # it would come back as -1, with c_void_p it is the full unsigned pointer value.
    assert kernel32.GetCurrentProcess() == win32.INVALID_HANDLE_VALUE
    port = kernel32.CreateIoCompletionPort(win32.INVALID_HANDLE_VALUE, None, 0, 1)
    assert port
    assert kernel32.CloseHandle(port)


@windows_only
def test_last_error_is_saved_per_call() -> None:
    kernel32 = win32.kernel32()
    assert not kernel32.CloseHandle(0x12345678)  # not a handle
    assert win32.last_error_getter()() == win32.WinError.ERROR_INVALID_HANDLE
