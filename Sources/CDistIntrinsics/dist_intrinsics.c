/* Everything in CDistIntrinsics is static inline in include/dist_intrinsics.h, but for
 * dist_pin_thread, which needs _GNU_SOURCE (Swift's Glibc does not show pthread_setaffinity_np),
 * the CPU feature dist_prefetch_exclusive reads and the secret of dist_address_hash_key. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
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

uint64_t dist_address_hash_secret = 0;

__attribute__((constructor)) static void dist_draw_address_hash_secret(void)
{
    if (getenv("SWIFT_DETERMINISTIC_HASHING") != NULL)
        return;
    uint64_t secret = 0;
    if (getrandom(&secret, sizeof secret, 0) != (ssize_t)sizeof secret) {
        /* (No entropy yet, or no getrandom: the time and this stack's place, weaker but not 0.) */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        secret = (uint64_t)now.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&now;
    }
    dist_address_hash_secret = secret | 1;
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
