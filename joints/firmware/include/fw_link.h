/* The hop link: reliable, in-order, exactly-once delivery over one wire, e-stops first (bus/link.py).
 *
 * Theory of operation: a line-by-line port of LinkEndpoint. Every received frame or timer expiry is classified
 * into an input (FW_IN_*), looked up in the generated state table (gen/fw_linktable_gen.h, from
 * bus/linktable.py) and the action it names is run. Stop-and-wait per direction: one DATA frame in flight, an
 * ordinary queue of config.queue_limit packets and an urgent queue of config.urgent_limit packets served first.
 *
 * Memory: the packets live in one pool of FW_LINK_SLOTS slots (the queues and the in-flight packet are indices
 * into it), so a packet is never copied from queue to flight to event. Events for the layer above go into a
 * fixed ring of small records (fw_link_event_t, FW_LINK_EVENTS entries) that the router drains in place:
 *   RECEIVED  refers to the frame scratch (the decoded frame): the joint routes and handles each completed frame
 *             before the next byte is taken (fw_joint_rx_block), so a link holds one received packet at a time;
 *   FAILED    keeps the failed packet's slot until the router releases the event (fw_link_pop_events); a packet
 *             failed at once on a DOWN link (FAIL_NOW) takes a free slot, or else keeps its head and first
 *             FW_LINK_HEAD_PAYLOAD payload bytes (counted in head_only when the packet was longer): all the router
 *             needs of it (the head, an UNDELIVERABLE's 8 bytes); the packets whose body the joint needs back
 *             (its own ENUMERATE, SYNC_READ, CYCLE) are never offered to a DOWN link;
 *   ACKED     keeps the packet's src only (the router's "was it mine?"); the slot is free at once.
 * Bytes to send collect in a transmit buffer drained by fw_link_take_output: one largest frame and the acks and
 * control frames that can wait behind it (an overflow is counted and is a line loss the retransmission repairs).
 * Everything is fixed size; limits that the configuration could exceed are refused by fw_link_config_ok.
 */
#ifndef FW_LINK_H
#define FW_LINK_H

#include <stdbool.h>
#include <stdint.h>

#include "fw_frame.h"
#include "fw_linktable_gen.h"

#define FW_LINK_QUEUE_MAX FW_LINK_QUEUE_LIMIT
#define FW_LINK_URGENT_MAX FW_LINK_URGENT_LIMIT
/* Packet slots: the queues, the one in flight, and one more: after a RESET from the peer the failed in-flight
 * packet waits in its slot for the router while the next one is in flight and the queues fill up again (a DOWN
 * link's failed queue needs no more: it queues nothing). */
#define FW_LINK_SLOTS (FW_LINK_QUEUE_MAX + FW_LINK_URGENT_MAX + 2)
#define FW_LINK_NO_SLOT 0xFFu
/* Events waiting for the router: a link going DOWN fails its queues (queue + urgent + 1 events), and the reports
 * of those failures can fail at once on a DOWN UP link within the same pass. */
#define FW_LINK_EVENTS 32
/* Transmit buffer: one largest frame and 16 control frames (acks, RESET, RESET_ACK) behind it. */
#define FW_LINK_OUT_SIZE (FW_MAX_ENCODED + 16 * FW_CONTROL_WIRE_SIZE)
#define FW_LINK_HEAD_PAYLOAD 8
#define FW_NO_DEADLINE INT64_MAX

enum { FW_EV_RECEIVED = 1, FW_EV_ACKED, FW_EV_FAILED, FW_EV_RESET, FW_EV_DOWN, FW_EV_LINE_ERROR };

/* The head of a packet and its first payload bytes: what a FAILED event keeps when its packet has no slot. */
typedef struct fw_packet_head {
    uint8_t src, dst, type, ttl;
    uint16_t msg_id;
    uint8_t len;
    uint8_t payload[FW_LINK_HEAD_PAYLOAD];
} fw_packet_head_t;

typedef struct fw_link_event {
    uint8_t kind;
    uint8_t reason;   /* FAILED: UndeliverableReason; LINE_ERROR: LineErrorKind */
    uint8_t flag;     /* FAILED: maybe_delivered; RESET: by_peer */
    uint8_t slot;     /* FAILED: the packet's slot, FW_LINK_NO_SLOT: only head */
    fw_packet_head_t head; /* FAILED and ACKED */
} fw_link_event_t;

typedef struct fw_link_config {
    int64_t baud;
    int64_t turnaround_ns;
    int32_t queue_limit;
    int32_t urgent_limit;
    int32_t max_retries;
    int64_t backoff_cap_ns;
    int64_t reverse_bytes;
    int64_t quiet_ns;
} fw_link_config_t;

typedef struct fw_link_counters {
    uint32_t frames_sent, frames_received, data_sent, urgent, data_delivered, acked, retransmits, duplicates,
        refused, out_of_window, stray_acks, dropped_syncing, stale_reset_acks, crc_errors, framing_errors,
        failures, resets_sent, resets_accepted, reset_answers, link_down, bytes_sent, bytes_received;
} fw_link_counters_t;

/* May this packet be delivered now (acked)? The router's backpressure check. */
typedef bool (*fw_accept_fn)(void *ctx, int role, const fw_packet_t *p);

/* The small fields first, the buffers last: on Thumb a field near the start is one load away. */
typedef struct fw_link {
    uint8_t state;
    uint8_t tx_seq, rx_expected;
    bool has_inflight, inflight_urgent;
    uint8_t inflight; /* slot of the packet in flight */
    bool arm_on_drain;
    uint8_t nonce;
    int16_t peer_nonce; /* -1: none */
    bool heard_since_reset, nonce_live, booting;
    uint8_t q_head, q_len;
    uint8_t u_head, u_len;
    uint16_t busy; /* one bit per slot in use */
    uint16_t ev_head, ev_len;
    uint16_t out_len;
    int32_t attempts;
    int64_t deadline; /* FW_NO_DEADLINE: none */
    int64_t timeout;
    int64_t fast_timeout, counted_at, urgent_since;
    fw_accept_fn accept;
    void *accept_ctx;
    int accept_role;
    fw_link_config_t config;
    fw_link_counters_t counters;
    uint32_t ev_overflow, out_overflow;
    uint32_t slot_refused, head_only; /* slot_refused: never (FW_LINK_SLOTS covers the worst case) */
    uint8_t queue[FW_LINK_QUEUE_MAX];
    uint8_t urgent[FW_LINK_URGENT_MAX];
    fw_link_event_t events[FW_LINK_EVENTS];
    uint8_t out[FW_LINK_OUT_SIZE];
    fw_deframer_t deframer;
    fw_frame_t scratch; /* the last decoded frame: a RECEIVED event's packet */
    fw_packet_t pkts[FW_LINK_SLOTS];
} fw_link_t;

void fw_link_config_default(fw_link_config_t *c);
bool fw_link_config_ok(const fw_link_config_t *c);
int64_t fw_wire_time_ns(int64_t nbytes, int64_t baud);
int64_t fw_link_timeout_ns(const fw_link_config_t *c, int64_t frame_bytes);

void fw_link_init(fw_link_t *l, const fw_link_config_t *c, uint8_t random_byte);
bool fw_link_send(fw_link_t *l, const fw_packet_t *p, int64_t now, bool urgent);
void fw_link_rx_byte(fw_link_t *l, uint8_t byte, int64_t now);
void fw_link_handle_timer(fw_link_t *l, int64_t now);
/* Drain the transmit buffer into out (cap bytes at most); returns the count. */
uint16_t fw_link_take_output(fw_link_t *l, int64_t now, uint8_t *out, uint16_t cap);
/* The boot silence: call when any input arrives (receive or drain) before anything else. */
void fw_link_touch(fw_link_t *l, int64_t now);
void fw_link_reset(fw_link_t *l, int64_t now);

static inline int64_t fw_link_next_deadline(const fw_link_t *l) { return l->deadline; }
static inline int fw_link_queue_space(const fw_link_t *l) { return l->config.queue_limit - l->q_len; }
static inline bool fw_link_is_open(const fw_link_t *l) { return l->state == FW_LS_OPEN; }
static inline const fw_packet_t *fw_link_inflight(const fw_link_t *l) {
    return l->has_inflight ? &l->pkts[l->inflight] : NULL;
}
/* Events: the k-th oldest; its packet (RECEIVED, FAILED; tmp is filled when only the head was kept); pop n. */
static inline fw_link_event_t *fw_link_event_at(fw_link_t *l, uint16_t k) {
    return &l->events[(l->ev_head + k) % FW_LINK_EVENTS];
}
const fw_packet_t *fw_link_event_packet(const fw_link_t *l, const fw_link_event_t *ev, fw_packet_t *tmp);
void fw_link_pop_events(fw_link_t *l, uint16_t n);

#endif
