/*
 * CDPDKShim: the few DPDK calls Swift cannot make itself.
 *
 * DPDK's fast-path functions are static inline and `struct rte_mbuf` does not import into
 * Swift, so they are wrapped here. This header deliberately includes no DPDK header: the
 * types are opaque, and only dist_dpdk.c is compiled against DPDK. Every function is
 * prefixed `dist_`. Nothing but what Swift cannot do lives here.
 */
#ifndef DIST_DPDK_H
#define DIST_DPDK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rte_mbuf;
struct rte_mempool;

/* ---- EAL ---------------------------------------------------------------------------- */

/** rte_eal_init. Returns the number of arguments consumed, or -1 with dist_errno() set. */
int dist_eal_init(int argc, char **argv);
int dist_eal_cleanup(void);
/** rte_errno of the calling thread. */
int dist_errno(void);
/** rte_strerror: a readable message for a DPDK or libc error number. */
const char *dist_strerror(int err);

unsigned dist_main_lcore(void);
/** Next enabled worker lcore after `prev` (pass -1 to start), or -1 when none is left. */
int dist_next_worker_lcore(int prev);
int dist_lcore_socket(unsigned lcore);
/** rte_eal_remote_launch. Returns 0 or a negative errno. */
int dist_lcore_launch(int (*fn)(void *), void *arg, unsigned lcore);
/** rte_eal_wait_lcore: the function's return value. */
int dist_lcore_wait(unsigned lcore);

uint64_t dist_tsc(void);
uint64_t dist_tsc_hz(void);

/* ---- mempools and mbufs ----------------------------------------------------------- */

/** rte_pktmbuf_pool_create_by_ops (ops NULL: EAL's choice, --mbuf-pool-ops-name or the
 * platform's). NULL on failure with dist_errno() set. */
struct rte_mempool *dist_pktmbuf_pool_create(const char *name, unsigned count, unsigned cache,
                                             uint16_t data_room, int socket, const char *ops);
/** The pool's mempool handler ("ring_mp_mc", "stack", ...). */
const char *dist_mempool_ops_name(const struct rte_mempool *mp);
/** The handler given to EAL with --mbuf-pool-ops-name, or NULL. */
const char *dist_mbuf_user_pool_ops(void);
unsigned dist_mempool_avail(const struct rte_mempool *mp);
unsigned dist_mempool_in_use(const struct rte_mempool *mp);

/**
 * Fills, for each of the n mbufs, the address of its first byte, the bytes in the first
 * segment (what can be parsed) and the packet's whole length; prefetches the headers.
 */
void dist_mbufs_meta(struct rte_mbuf *const *pkts, uint16_t n, const uint8_t **data,
                     uint16_t *seg_len, uint32_t *pkt_len);
void dist_mbuf_free(struct rte_mbuf *m);
void dist_mbuf_free_bulk(struct rte_mbuf **pkts, unsigned n);
void dist_prefetch(const void *p);
/** A new single-segment mbuf from `pool` holding a copy of `len` bytes; NULL when the pool is
 *  empty or the bytes do not fit one segment. */
struct rte_mbuf *dist_mbuf_from_bytes(struct rte_mempool *pool, const uint8_t *data, uint32_t len);
/** Copies the whole packet (every segment) into `out` (up to `cap` bytes); returns its length,
 *  or 0 when it does not fit. */
uint32_t dist_mbuf_copy(const struct rte_mbuf *m, uint8_t *out, uint32_t cap);
/** The packet's whole length (every segment). */
uint32_t dist_mbuf_pkt_len(const struct rte_mbuf *m);
/** The packet's bytes where they lie, when it is one segment (NULL when it is several). */
const uint8_t *dist_mbuf_contiguous(const struct rte_mbuf *m);

/* ---- ports ------------------------------------------------------------------------ */

struct dist_port_info {
    char driver[32];
    char name[64];
    uint16_t max_rx_queues;
    uint16_t max_tx_queues;
    uint64_t rss_offloads;
    uint32_t max_rx_pktlen;
    int socket;
    uint8_t mac[6];
};

struct dist_port_stats {
    uint64_t ipackets, opackets, ibytes, obytes, imissed, ierrors, oerrors, rx_nombuf;
};

uint16_t dist_port_count(void);
int dist_port_info(uint16_t port, struct dist_port_info *out);

/**
 * Configures a port with nrxq RX and ntxq TX queues (RSS with a symmetric key when nrxq > 1
 * and the device supports it, so both directions of a flow reach the same queue), sets the
 * queues up on `pool`, starts the port and enables promiscuous mode. On failure returns a
 * negative errno and writes "step: reason" into err. *rss is set to 1 when RSS is on.
 * *timestamps asks for the port's receive timestamps as dates (net_pcap's: the capture's; no
 * other driver's stamps are dates); it is left 1 when the port gives them.
 */
int dist_port_setup(uint16_t port, uint16_t nrxq, uint16_t ntxq, uint16_t nrxd, uint16_t ntxd,
                    struct rte_mempool *pool, int *rss, int *timestamps, char *err, size_t errlen);
/** Each mbuf's receive date (ns since the epoch; a capture's may be 0), or UINT64_MAX where it has none. */
void dist_mbufs_stamps(struct rte_mbuf *const *pkts, uint16_t n, uint64_t *out);
/**
 * Programs the port's RSS redirection table with `table` (`table_len` entries, repeated over
 * the port's table) and reads back what the port uses: its table (`reta_out`, up to `reta_cap`
 * entries; `*reta_size` is its size) and its hash key (`key_out`, up to `key_cap` bytes;
 * `*key_len`). Returns 0, or a negative errno with "step: reason" in err (no RSS, a table size
 * that is not a multiple of `table_len`, or a call the driver refused).
 */
int dist_port_program_rss(uint16_t port, const uint16_t *table, uint16_t table_len, uint16_t *reta_out,
                          uint16_t reta_cap, uint16_t *reta_size, uint8_t *key_out, uint8_t key_cap,
                          uint8_t *key_len, char *err, size_t errlen);
/** DPDK's software Toeplitz hash (rte_softrss) of `len` bytes (a multiple of 4, network order)
 *  under `key`: what a NIC computes, to check the owner function against at start-up. */
uint32_t dist_softrss(const uint8_t *input, uint32_t len, const uint8_t *key);
/** 1 when the port's link is up, 0 when down, a negative errno on failure (does not wait). */
int dist_port_link_up(uint16_t port);
int dist_port_stop(uint16_t port);
int dist_port_close(uint16_t port);
int dist_port_stats(uint16_t port, struct dist_port_stats *out);

uint16_t dist_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t dist_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

#ifdef __cplusplus
}
#endif

#endif
