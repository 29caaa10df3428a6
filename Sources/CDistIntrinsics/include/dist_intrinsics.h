/*
 * CDistIntrinsics: CPU hints Swift has no spelling for. Header-only, no DPDK: the flow table
 * (which must not import DPDK) uses it to prefetch hash slots and entries a burst ahead.
 */
#ifndef DIST_INTRINSICS_H
#define DIST_INTRINSICS_H

/** Brings the cache line at p towards the core for reading (all cache levels). */
static inline __attribute__((always_inline)) void dist_prefetch_read(const void *p)
{
    __builtin_prefetch(p, 0, 3);
}

/** The same, for a line about to be written. */
static inline __attribute__((always_inline)) void dist_prefetch_write(const void *p)
{
    __builtin_prefetch(p, 1, 3);
}

#endif
