/*
 * Stand-in for bcryptprimitives.dll, which Wine 8.0 lacks: the Go runtime
 * (1.24 and later) of every Windows binary calls ProcessPrng at start and
 * aborts without it. Used only by the Wine tier (test/wine); real Windows
 * has the DLL. ProcessPrng fills the buffer from RtlGenRandom
 * (advapi32's SystemFunction036), which Wine implements.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
