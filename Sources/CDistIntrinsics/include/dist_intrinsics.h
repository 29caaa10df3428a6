/*
 * CDistIntrinsics: CPU hints and instructions Swift has no spelling for, no DPDK: the flow table
 * (which must not import DPDK) uses it to prefetch hash slots and entries a burst ahead, the
 * worker handoff to write its ring's slots, the state codec for its checksum, the address hash
 * for its secret. Static inline here, but for what dist_intrinsics.c sets before main (the CPU's
 * features, the secret) and the CPU pinning call.
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

/** Whether the CPU has PREFETCHW (set when the program loads; see dist_prefetch_exclusive). */
extern int dist_cpu_prefetchw;
static inline int dist_prefetchw_available(void) { return dist_cpu_prefetchw; }

/**
 * Brings the line at p for writing, exclusive: PREFETCHW where the CPU has it (the compiler
 * emits a read prefetch for dist_prefetch_write unless told the CPU has it). For a line another
 * core wrote last (a handed-off mbuf, freed and reused here): it then crosses once, where a read
 * prefetch brings it shared and the first store waits for the other core again. Not for this
 * core's own lines: on the flow table's entries it gained nothing and forwarded slower.
 */
static inline __attribute__((always_inline)) void dist_prefetch_exclusive(const void *p)
{
#if defined(__x86_64__)
    if (__builtin_expect(dist_cpu_prefetchw, 1))
        __asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
    else
        __builtin_prefetch(p, 1, 3);
#else
    __builtin_prefetch(p, 1, 3);
#endif
}

/**
 * Writes the eight words to the cache line at dst (64-byte aligned) past the caches
 * (non-temporal stores): the line is not fetched first, which a plain store would do, from
 * another core's cache when that core read it last. Order them before a later release store
 * with dist_store_fence.
 */
#if defined(__x86_64__)
#include <emmintrin.h>
#include <stdint.h>
static inline __attribute__((always_inline)) void dist_stream_words(
    void *dst, uint64_t w0, uint64_t w1, uint64_t w2, uint64_t w3, uint64_t w4, uint64_t w5, uint64_t w6,
    uint64_t w7)
{
    long long *d = (long long *)dst;
    _mm_stream_si64(d, (long long)w0);
    _mm_stream_si64(d + 1, (long long)w1);
    _mm_stream_si64(d + 2, (long long)w2);
    _mm_stream_si64(d + 3, (long long)w3);
    _mm_stream_si64(d + 4, (long long)w4);
    _mm_stream_si64(d + 5, (long long)w5);
    _mm_stream_si64(d + 6, (long long)w6);
    _mm_stream_si64(d + 7, (long long)w7);
}

/** Orders the non-temporal stores before it ahead of every store after it. */
static inline __attribute__((always_inline)) void dist_store_fence(void) { _mm_sfence(); }
#else
#include <stdint.h>
static inline void dist_stream_words(
    void *dst, uint64_t w0, uint64_t w1, uint64_t w2, uint64_t w3, uint64_t w4, uint64_t w5, uint64_t w6,
    uint64_t w7)
{
    uint64_t *d = (uint64_t *)dst;
    d[0] = w0; d[1] = w1; d[2] = w2; d[3] = w3; d[4] = w4; d[5] = w5; d[6] = w6; d[7] = w7;
}
static inline void dist_store_fence(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
#endif

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

/* Runs the calling thread on `cpu` alone: 0, or -1 if the system refuses (no such CPU). */
int dist_pin_thread(int cpu);

#include <stdint.h>
/* Set before main: random per process, 0 with SWIFT_DETERMINISTIC_HASHING (runs that must repeat). */
extern uint64_t dist_address_hash_secret;

/**
 * The secret every hash of an address takes (IPAddress's, for the dictionaries of hosts), beside
 * the collection's own seed, which is only its storage's address: a plain load, where a Swift
 * global initialised at random is a call and a check each time.
 */
static inline __attribute__((always_inline)) uint64_t dist_address_hash_key(void) { return dist_address_hash_secret; }

#endif
