/* no_amx.c: an LD_PRELOAD shim that hides AMX from a process, so that ONNX Runtime's int8
 * products run on AVX-512 VNNI like driftrec's (bench/models/run.py, the "ort-...-noamx" rows).
 *
 * Linux hands out AMX tile state only to processes that ask for it with
 * arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); ONNX Runtime's MLAS asks through
 * syscall(2) at start-up and keeps its AVX-512 VNNI kernels when the request fails.  This shim
 * answers that request with EPERM and clears the tile bits from ARCH_GET_XCOMP_PERM's answer;
 * every other call of syscall() goes through unchanged.  With DR_NO_AMX_REPORT set it says on
 * stderr when it refused a request (so the benchmark can tell that ONNX Runtime wanted AMX).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>

#define DR_ARCH_GET_XCOMP_PERM 0x1022
#define DR_ARCH_REQ_XCOMP_PERM 0x1023
#define DR_XFEATURE_XTILECFG   17
#define DR_XFEATURE_XTILEDATA  18

long syscall(long number, ...);

long syscall(long number, ...)
{
    va_list ap;
    long a[6];
    va_start(ap, number);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    static long (*real)(long, ...);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "syscall");
    if (number == SYS_arch_prctl && a[0] == DR_ARCH_REQ_XCOMP_PERM &&
        (a[1] == DR_XFEATURE_XTILEDATA || a[1] == DR_XFEATURE_XTILECFG)) {
        if (getenv("DR_NO_AMX_REPORT"))
            fprintf(stderr, "no_amx: refused arch_prctl(ARCH_REQ_XCOMP_PERM, %ld)\n", a[1]);
        errno = EPERM;
        return -1;
    }
    long rc = real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (number == SYS_arch_prctl && a[0] == DR_ARCH_GET_XCOMP_PERM && rc == 0 && a[1])
        *(unsigned long *)a[1] &= ~((1ul << DR_XFEATURE_XTILECFG) | (1ul << DR_XFEATURE_XTILEDATA));
    return rc;
}
