// bcryptprimitives.dll for Wine 8 (Debian 12), which lacks it: Rust's std on Windows draws its
// random bytes from ProcessPrng there. Built by scripts/windows-tests.sh into the test Wine
// prefix only, on top of advapi32's RtlGenRandom (which Wine has). Never shipped.
#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk)) return FALSE;
        data += chunk; len -= chunk;
    }
    return TRUE;
}
