/* The router: address-based forwarding between a joint's UP and DOWN links (bus/router.py).
 *
 * Theory of operation: a port of Router for a joint (two links). fw_router_pump drains both links' event rings in
 * place, forwards and reports (UNDELIVERABLE to the host) as Router.pump does, and lists what the joint must
 * handle itself (packets for it, link notices) as references to the events, which stay in the rings (and their
 * packets in the links' slots and frame scratch, fw_link_event_packet) until fw_router_release: the joint handles
 * them after the router's pass over every event, in the Python order.
 * Reports waiting for room in the UP queue sit in a backlog of FW_REPORT_BACKLOG compact entries.
 */
#ifndef FW_ROUTER_H
#define FW_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "fw_link.h"

#define FW_UNDELIVERABLE_SIZE 8
#define FW_ROUTER_ITEMS (2 * FW_LINK_EVENTS)

typedef struct fw_report {
    uint8_t src, dst, ttl;
    uint16_t msg_id;
    uint8_t payload[FW_UNDELIVERABLE_SIZE];
} fw_report_t;

typedef struct fw_router_counters {
    uint32_t delivered, forwarded, ttl_expired, no_route, queue_full, reports_sent, reports_resent, reports_dropped,
        reports_suppressed, refused, urgent;
    int32_t reserved[2];
} fw_router_counters_t;

/* One thing for the joint: a packet delivered to it (notice false) or a link notice, by role and the event's
 * index in that link's ring (fw_router_item_event). */
typedef struct fw_router_item {
    uint8_t role;
    bool notice;
    uint8_t event;
} fw_router_item_t;

typedef bool (*fw_local_accept_fn)(void *ctx, const fw_packet_t *p);

typedef struct fw_router {
    uint8_t address;
    fw_link_t *links[2];
    bool nothing_down;     /* the chain end: no broadcast goes DOWN (self_forwarded = every type) */
    bool chain_continues;  /* enumeration found joints below: broadcasts lost below are reported */
    fw_local_accept_fn local_accept;
    void *local_ctx;
    uint8_t b_head, b_len;
    uint16_t n_items;
    uint16_t processed[2];
    uint32_t items_overflow;
    fw_router_counters_t counters;
    fw_report_t backlog[FW_REPORT_BACKLOG];
    fw_router_item_t items[FW_ROUTER_ITEMS];
} fw_router_t;

void fw_router_init(fw_router_t *r, uint8_t address, fw_link_t *up, fw_link_t *down, fw_local_accept_fn accept,
                    void *ctx);
/* Originate a packet here; false if the queue toward its next hop is full. */
bool fw_router_send(fw_router_t *r, const fw_packet_t *p, int64_t now);
void fw_router_report(fw_router_t *r, const fw_packet_t *p, int role, uint8_t reason, int64_t now);
/* Drain both links' events; r->items[0..n_items) are the joint's. Call fw_router_release after handling them. */
uint16_t fw_router_pump(fw_router_t *r, int64_t now);
void fw_router_release(fw_router_t *r);
static inline fw_link_event_t *fw_router_item_event(const fw_router_t *r, const fw_router_item_t *it) {
    return &r->links[it->role]->events[it->event];
}

#endif
