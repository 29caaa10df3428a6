/* CDPDKShim: see include/dist_dpdk.h. Compiled with DPDK's headers; nothing else is. */
#include "dist_dpdk.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_memcpy.h>
#include <rte_mempool.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_prefetch.h>
#include <rte_thash.h>

int dist_eal_init(int argc, char **argv) { return rte_eal_init(argc, argv); }
int dist_eal_cleanup(void) { return rte_eal_cleanup(); }
int dist_errno(void) { return rte_errno; }
const char *dist_strerror(int err) { return rte_strerror(err < 0 ? -err : err); }

unsigned dist_main_lcore(void) { return rte_get_main_lcore(); }

int dist_next_worker_lcore(int prev)
{
    unsigned start = prev < 0 ? (unsigned)-1 : (unsigned)prev;
    unsigned next = rte_get_next_lcore(start, 1 /* skip main */, 0 /* no wrap */);
    return next >= RTE_MAX_LCORE ? -1 : (int)next;
}

int dist_lcore_socket(unsigned lcore)
{
    unsigned s = rte_lcore_to_socket_id(lcore);
    return s == (unsigned)SOCKET_ID_ANY ? 0 : (int)s;
}

int dist_lcore_launch(int (*fn)(void *), void *arg, unsigned lcore)
{
    return rte_eal_remote_launch(fn, arg, lcore);
}

int dist_lcore_wait(unsigned lcore) { return rte_eal_wait_lcore(lcore); }

uint64_t dist_tsc(void) { return rte_rdtsc(); }
uint64_t dist_tsc_hz(void) { return rte_get_tsc_hz(); }

struct rte_mempool *dist_pktmbuf_pool_create(const char *name, unsigned count, unsigned cache,
                                             uint16_t data_room, int socket, const char *ops)
{
    return rte_pktmbuf_pool_create_by_ops(name, count, cache, 0, data_room, socket, ops);
}

const char *dist_mempool_ops_name(const struct rte_mempool *mp)
{
    return rte_mempool_get_ops(mp->ops_index)->name;
}

const char *dist_mbuf_user_pool_ops(void) { return rte_eal_mbuf_user_pool_ops(); }

unsigned dist_mempool_avail(const struct rte_mempool *mp) { return rte_mempool_avail_count(mp); }
unsigned dist_mempool_in_use(const struct rte_mempool *mp) { return rte_mempool_in_use_count(mp); }

void dist_mbufs_meta(struct rte_mbuf *const *pkts, uint16_t n, const uint8_t **data,
                     uint16_t *seg_len, uint32_t *pkt_len)
{
    for (uint16_t i = 0; i < n; i++) {
        const struct rte_mbuf *m = pkts[i];
        const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
        rte_prefetch0(p);
        data[i] = p;
        seg_len[i] = m->data_len;
        pkt_len[i] = m->pkt_len;
    }
}

void dist_mbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
void dist_mbuf_free_bulk(struct rte_mbuf **pkts, unsigned n) { rte_pktmbuf_free_bulk(pkts, n); }
void dist_prefetch(const void *p) { rte_prefetch0(p); }

uint16_t dist_port_count(void) { return rte_eth_dev_count_avail(); }

int dist_port_info(uint16_t port, struct dist_port_info *out)
{
    struct rte_eth_dev_info info;
    memset(out, 0, sizeof(*out));
    int rc = rte_eth_dev_info_get(port, &info);
    if (rc != 0)
        return rc;
    snprintf(out->driver, sizeof(out->driver), "%s", info.driver_name ? info.driver_name : "?");
    if (rte_eth_dev_get_name_by_port(port, out->name) != 0)
        snprintf(out->name, sizeof(out->name), "port%u", port);
    out->max_rx_queues = info.max_rx_queues;
    out->max_tx_queues = info.max_tx_queues;
    out->rss_offloads = info.flow_type_rss_offloads;
    out->max_rx_pktlen = info.max_rx_pktlen;
    int s = rte_eth_dev_socket_id(port);
    out->socket = s < 0 ? 0 : s;
    struct rte_ether_addr mac;
    if (rte_eth_macaddr_get(port, &mac) == 0)
        memcpy(out->mac, mac.addr_bytes, 6);
    return 0;
}

/* A repeated 0x6d5a key makes the Toeplitz hash symmetric: (a,b) and (b,a) hash alike. */
static uint8_t symmetric_rss_key[40] = {
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
};

static int fail(char *err, size_t errlen, const char *step, int rc)
{
    snprintf(err, errlen, "%s: %s", step, rte_strerror(rc < 0 ? -rc : rc));
    return rc < 0 ? rc : -rc;
}

/* The mbuf field and flag a port's receive timestamps use (registered once, when a port is
 * asked for them; -1 and 0 until then). */
static int timestamp_offset = -1;
static uint64_t timestamp_flag = 0;

void dist_mbufs_stamps(struct rte_mbuf *const *pkts, uint16_t n, uint64_t *out)
{
    for (uint16_t i = 0; i < n; i++) {
        const struct rte_mbuf *m = pkts[i];
        out[i] = timestamp_offset >= 0 && (m->ol_flags & timestamp_flag)
                     ? *RTE_MBUF_DYNFIELD(m, timestamp_offset, const rte_mbuf_timestamp_t *) * 1000
                     : UINT64_MAX;
    }
}

int dist_port_setup(uint16_t port, uint16_t nrxq, uint16_t ntxq, uint16_t nrxd, uint16_t ntxd,
                    struct rte_mempool *pool, int *rss, int *timestamps, char *err, size_t errlen)
{
    struct rte_eth_dev_info info;
    struct rte_eth_conf conf;
    int rc;

    *rss = 0;
    if (!rte_eth_dev_is_valid_port(port))
        return fail(err, errlen, "rte_eth_dev_is_valid_port", ENODEV);
    rc = rte_eth_dev_info_get(port, &info);
    if (rc != 0)
        return fail(err, errlen, "rte_eth_dev_info_get", rc);
    if (nrxq > info.max_rx_queues || ntxq > info.max_tx_queues) {
        snprintf(err, errlen, "device %s supports %u RX and %u TX queues, %u and %u asked",
                 info.driver_name, info.max_rx_queues, info.max_tx_queues, nrxq, ntxq);
        return -EINVAL;
    }

    memset(&conf, 0, sizeof(conf));
    uint64_t hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
    if (nrxq > 1 && hf != 0) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = symmetric_rss_key;
        conf.rx_adv_conf.rss_conf.rss_key_len = sizeof(symmetric_rss_key);
        conf.rx_adv_conf.rss_conf.rss_hf = hf;
        *rss = 1;
    }
    if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;

    rc = rte_eth_dev_configure(port, nrxq, ntxq, &conf);
    if (rc != 0)
        return fail(err, errlen, "rte_eth_dev_configure", rc);
    rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrxd, &ntxd);
    if (rc != 0)
        return fail(err, errlen, "rte_eth_dev_adjust_nb_rx_tx_desc", rc);

    int socket = rte_eth_dev_socket_id(port);
    if (socket < 0)
        socket = (int)rte_socket_id();
    for (uint16_t q = 0; q < nrxq; q++) {
        rc = rte_eth_rx_queue_setup(port, q, nrxd, (unsigned)socket, NULL, pool);
        if (rc != 0)
            return fail(err, errlen, "rte_eth_rx_queue_setup", rc);
    }
    struct rte_eth_txconf txconf = info.default_txconf;
    txconf.offloads = conf.txmode.offloads;
    for (uint16_t q = 0; q < ntxq; q++) {
        rc = rte_eth_tx_queue_setup(port, q, ntxd, (unsigned)socket, &txconf);
        if (rc != 0)
            return fail(err, errlen, "rte_eth_tx_queue_setup", rc);
    }
    rc = rte_eth_dev_start(port);
    if (rc != 0)
        return fail(err, errlen, "rte_eth_dev_start", rc);
    rc = rte_eth_promiscuous_enable(port);
    if (rc != 0 && rc != -ENOTSUP)
        return fail(err, errlen, "rte_eth_promiscuous_enable", rc);
    if (*timestamps) {
        /* net_pcap registers the timestamp field when it starts (without saying so in its
         * capabilities) and stamps every packet with the capture's time in microseconds since
         * the epoch; each packet says by the flag that it has one. Other drivers' stamps are
         * their clocks', in units of their own: not dates. */
        int offset = rte_mbuf_dynfield_lookup(RTE_MBUF_DYNFIELD_TIMESTAMP_NAME, NULL);
        int bit = rte_mbuf_dynflag_lookup(RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME, NULL);
        *timestamps = offset >= 0 && bit >= 0 && strcmp(info.driver_name, "net_pcap") == 0;
        if (*timestamps) {
            timestamp_offset = offset;
            timestamp_flag = UINT64_C(1) << bit;
        }
    }
    return 0;
}

int dist_port_program_rss(uint16_t port, const uint16_t *table, uint16_t table_len, uint16_t *reta_out,
                          uint16_t reta_cap, uint16_t *reta_size, uint8_t *key_out, uint8_t key_cap,
                          uint8_t *key_len, char *err, size_t errlen)
{
    struct rte_eth_dev_info info;
    int rc = rte_eth_dev_info_get(port, &info);
    if (rc != 0)
        return fail(err, errlen, "rte_eth_dev_info_get", rc);
    uint16_t size = info.reta_size;
    if (size == 0 || table_len == 0 || size % table_len != 0 || size > reta_cap) {
        snprintf(err, errlen, "redirection table of %u entries (needs a multiple of %u, at most %u)", size,
                 table_len, reta_cap);
        return -ENOTSUP;
    }
    uint16_t groups = (uint16_t)((size + RTE_ETH_RETA_GROUP_SIZE - 1) / RTE_ETH_RETA_GROUP_SIZE);
    struct rte_eth_rss_reta_entry64 conf[groups];
    memset(conf, 0, sizeof(conf));
    for (uint16_t i = 0; i < size; i++) {
        conf[i / RTE_ETH_RETA_GROUP_SIZE].mask |= 1ULL << (i % RTE_ETH_RETA_GROUP_SIZE);
        conf[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE] = table[i % table_len];
    }
    rc = rte_eth_dev_rss_reta_update(port, conf, size);
    if (rc != 0)
        return fail(err, errlen, "rte_eth_dev_rss_reta_update", rc);
    memset(conf, 0, sizeof(conf));
    for (uint16_t g = 0; g < groups; g++)
        conf[g].mask = ~0ULL;
    rc = rte_eth_dev_rss_reta_query(port, conf, size);
    if (rc != 0)
        return fail(err, errlen, "rte_eth_dev_rss_reta_query", rc);
    for (uint16_t i = 0; i < size; i++)
        reta_out[i] = conf[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE];
    *reta_size = size;
    /* (rss_key_len is a uint8_t: the buffer's size must fit it.) */
    uint8_t key[255];
    struct rte_eth_rss_conf rss = {.rss_key = key, .rss_key_len = sizeof(key)};
    if (info.hash_key_size > 0 && info.hash_key_size < sizeof(key))
        rss.rss_key_len = info.hash_key_size;
    rc = rte_eth_dev_rss_hash_conf_get(port, &rss);
    if (rc != 0)
        return fail(err, errlen, "rte_eth_dev_rss_hash_conf_get", rc);
    uint8_t n = rss.rss_key_len < key_cap ? (uint8_t)rss.rss_key_len : key_cap;
    memcpy(key_out, key, n);
    *key_len = n;
    return 0;
}

uint32_t dist_softrss(const uint8_t *input, uint32_t len, const uint8_t *key)
{
    uint32_t words[16];
    uint32_t n = len / 4 < 16 ? len / 4 : 16;
    for (uint32_t i = 0; i < n; i++)
        words[i] = (uint32_t)input[4 * i] << 24 | (uint32_t)input[4 * i + 1] << 16 |
                   (uint32_t)input[4 * i + 2] << 8 | input[4 * i + 3];
    return rte_softrss(words, n, key);
}

int dist_port_link_up(uint16_t port)
{
    struct rte_eth_link link;
    int rc = rte_eth_link_get_nowait(port, &link);
    return rc != 0 ? rc : link.link_status == RTE_ETH_LINK_UP;
}

int dist_port_stop(uint16_t port) { return rte_eth_dev_stop(port); }
int dist_port_close(uint16_t port) { return rte_eth_dev_close(port); }

int dist_port_stats(uint16_t port, struct dist_port_stats *out)
{
    struct rte_eth_stats s;
    memset(out, 0, sizeof(*out));
    int rc = rte_eth_stats_get(port, &s);
    if (rc != 0)
        return rc;
    out->ipackets = s.ipackets;
    out->opackets = s.opackets;
    out->ibytes = s.ibytes;
    out->obytes = s.obytes;
    out->imissed = s.imissed;
    out->ierrors = s.ierrors;
    out->oerrors = s.oerrors;
    out->rx_nombuf = s.rx_nombuf;
    return 0;
}

uint16_t dist_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
    return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t dist_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
    return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *dist_mbuf_from_bytes(struct rte_mempool *pool, const uint8_t *data, uint32_t len)
{
    struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
    if (m == NULL)
        return NULL;
    if (len > rte_pktmbuf_tailroom(m) || len > UINT16_MAX) {
        rte_pktmbuf_free(m);
        return NULL;
    }
    char *at = rte_pktmbuf_append(m, (uint16_t)len);
    rte_memcpy(at, data, len);
    return m;
}

uint32_t dist_mbuf_pkt_len(const struct rte_mbuf *m)
{
    return rte_pktmbuf_pkt_len(m);
}

const uint8_t *dist_mbuf_contiguous(const struct rte_mbuf *m)
{
    return m->nb_segs == 1 ? rte_pktmbuf_mtod(m, const uint8_t *) : NULL;
}

uint32_t dist_mbuf_copy(const struct rte_mbuf *m, uint8_t *out, uint32_t cap)
{
    uint32_t len = rte_pktmbuf_pkt_len(m);
    if (len > cap)
        return 0;
    const void *p = rte_pktmbuf_read(m, 0, len, out);
    if (p == NULL)
        return 0;
    if (p != out)
        rte_memcpy(out, p, len);
    return len;
}
