# bcryptprimitives.dll for Wine 8: the one export Rust-built extensions need.
#
# Rust's standard library (1.78 and later) draws random bytes with ProcessPrng from
# bcryptprimitives.dll. Wine gained that DLL only in 9.x; Debian 12 ships Wine 8.0, where
# loading pydantic_core (a Rust extension) fails with "DLL load failed ... Module not found".
# scripts/windows-python assembles this file with Debian's binutils-mingw-w64-x86-64 into a
# 5 KB DLL placed next to python.exe (the application directory is searched first).
#
# ProcessPrng(PBYTE pbData, SIZE_T cbData) -> BOOL is documented to always return TRUE.
# It forwards to advapi32!SystemFunction036 (RtlGenRandom: (PVOID, ULONG) -> BOOLEAN),
# which Wine implements. Both take their arguments in rcx/rdx (Windows x64 ABI); cbData
# is truncated to 32 bits, harmless for the small seeds Rust asks for (16-32 bytes).

    .text
    .globl ProcessPrng
ProcessPrng:
    sub $40, %rsp                       # 32 bytes shadow space + 8 to realign to 16
    call *__imp_SystemFunction036(%rip)
    movzbl %al, %eax                    # BOOLEAN (al) -> BOOL (eax)
    add $40, %rsp
    ret

    .globl DllMain
DllMain:                                # BOOL DllMain(HINSTANCE, DWORD, LPVOID): TRUE
    mov $1, %eax
    ret
