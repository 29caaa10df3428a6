/* Everything in CDistIntrinsics is static inline in include/dist_intrinsics.h, but for
 * dist_pin_thread, which needs _GNU_SOURCE (Swift's Glibc does not show pthread_setaffinity_np),
 * and the CPU feature dist_prefetch_exclusive reads. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include "dist_intrinsics.h"
#if defined(__x86_64__)
#include <cpuid.h>
#endif

int dist_cpu_prefetchw = 0;

__attribute__((constructor)) static void dist_detect_cpu(void)
{
#if defined(__x86_64__)
    unsigned a, b, c, d;
    /* PRFCHW: CPUID 0x80000001, ECX bit 8 (every AMD64 CPU; Intel since Broadwell). */
    if (__get_cpuid(0x80000001, &a, &b, &c, &d))
        dist_cpu_prefetchw = (c >> 8) & 1;
#endif
}

int dist_pin_thread(int cpu)
{
    if (cpu < 0 || cpu >= CPU_SETSIZE)
        return -1;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0 ? 0 : -1;
}
