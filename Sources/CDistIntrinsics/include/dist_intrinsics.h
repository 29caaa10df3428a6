/*
 * CDistIntrinsics: CPU hints and instructions Swift has no spelling for. Header-only, no DPDK:
 * the flow table (which must not import DPDK) uses it to prefetch hash slots and entries a
 * burst ahead, the state codec for its checksum.
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

/**
 * CRC-32C (Castagnoli) of n bytes at p, continuing from crc (pass 0xFFFFFFFF first, invert the
 * result), with SSE 4.2's crc32 instruction, 8 bytes a step. Only where
 * dist_crc32c_hardware() says the CPU has it; 0 elsewhere.
 */
#if defined(__x86_64__)
#include <stdint.h>
#include <stddef.h>
#include <string.h>
static inline __attribute__((target("sse4.2"))) uint32_t dist_crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n-- > 0) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}

static inline int dist_crc32c_hardware(void) { return __builtin_cpu_supports("sse4.2"); }
#else
#include <stdint.h>
#include <stddef.h>
static inline uint32_t dist_crc32c(uint32_t crc, const uint8_t *p, size_t n) { (void)p; (void)n; return crc; }
static inline int dist_crc32c_hardware(void) { return 0; }
#endif

#endif
