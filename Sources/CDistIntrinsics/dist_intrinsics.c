/* Everything in CDistIntrinsics is static inline in include/dist_intrinsics.h, but for
 * dist_pin_thread, which needs _GNU_SOURCE (Swift's Glibc does not show pthread_setaffinity_np). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include "dist_intrinsics.h"

int dist_pin_thread(int cpu)
{
    if (cpu < 0 || cpu >= CPU_SETSIZE)
        return -1;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0 ? 0 : -1;
}
