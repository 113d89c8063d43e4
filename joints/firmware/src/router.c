/* The router: a port of bus/router.py Router for a joint. See include/fw_router.h. */
#include "fw_router.h"

#include <string.h>

enum { NONE = -1 };

static void route(const fw_router_t *r, const fw_packet_t *p, int came_from, bool *local, int *fwd) {
    uint8_t dst = p->dst, me = r->address;
    *local = false;
    *fwd = NONE;
    if (came_from == FW_PORT_DOWN && fw_gathered(p->type)) {
        *local = true;
        return;
    }
    if (dst == FW_ADDR_BROADCAST) {
        bool self_forwarded = r->nothing_down || fw_self_forwarded(p->type);
        *local = true;
        *fwd = (came_from != FW_PORT_DOWN && !self_forwarded) ? FW_PORT_DOWN : NONE;
        return;
    }
    if (dst == me) {
        *local = true;
        return;
    }
    if (me == FW_ADDR_UNASSIGNED) {
        *fwd = dst == FW_ADDR_HOST ? FW_PORT_UP : FW_PORT_DOWN;
        return;
    }
    int role = (dst == FW_ADDR_HOST || dst < me) ? FW_PORT_UP : FW_PORT_DOWN;
    *fwd = role == came_from ? NONE : role;
}

static bool accept(void *ctx, int role, const fw_packet_t *p) {
    fw_router_t *r = ctx;
    if (fw_urgent_type(p->type)) {
        r->counters.urgent++;
        return true;
    }
    bool local;
    int fwd;
    route(r, p, role, &local, &fwd);
    if (local && r->local_accept && !r->local_accept(r->local_ctx, p)) {
        r->counters.refused++;
        return false;
    }
    if (fwd == NONE) return true;
    fw_link_t *l = r->links[fwd];
    if (l == NULL || l->state == FW_LS_DOWN) return true;
    if (fw_link_queue_space(l) - r->counters.reserved[fwd] <= 0) {
        r->counters.refused++;
        return false;
    }
    r->counters.reserved[fwd]++;
    return true;
}

void fw_router_init(fw_router_t *r, uint8_t address, fw_link_t *up, fw_link_t *down, fw_local_accept_fn local_accept,
                    void *ctx) {
    memset(r, 0, sizeof *r);
    r->address = address;
    r->links[FW_PORT_UP] = up;
    r->links[FW_PORT_DOWN] = down;
    r->local_accept = local_accept;
    r->local_ctx = ctx;
    for (int role = 0; role < 2; role++) {
        if (r->links[role]) {
            r->links[role]->accept = accept;
            r->links[role]->accept_ctx = r;
            r->links[role]->accept_role = role;
        }
    }
}

static void report_packet(const fw_report_t *rep, fw_packet_t *p) {
    p->src = rep->src;
    p->dst = rep->dst;
    p->type = FW_MSG_UNDELIVERABLE;
    p->msg_id = rep->msg_id;
    p->ttl = rep->ttl;
    p->len = FW_UNDELIVERABLE_SIZE;
    memcpy(p->payload, rep->payload, FW_UNDELIVERABLE_SIZE);
}

static void flush(fw_router_t *r, int64_t now) {
    fw_link_t *up = r->links[FW_PORT_UP];
    fw_packet_t p;
    while (r->b_len && up != NULL) {
        report_packet(&r->backlog[r->b_head], &p);
        if (!fw_link_send(up, &p, now, false)) break;
        r->b_head = (uint8_t)((r->b_head + 1) % FW_REPORT_BACKLOG);
        r->b_len--;
    }
}

static void backlog_append(fw_router_t *r, const fw_report_t *rep) {
    if (r->b_len >= FW_REPORT_BACKLOG) {
        r->b_head = (uint8_t)((r->b_head + 1) % FW_REPORT_BACKLOG);
        r->b_len--;
        r->counters.reports_dropped++;
    }
    r->backlog[(r->b_head + r->b_len) % FW_REPORT_BACKLOG] = *rep;
    r->b_len++;
}

static uint8_t next_hop(const fw_router_t *r, int role) {
    if (r->address == FW_ADDR_UNASSIGNED) return role == FW_PORT_UP ? FW_ADDR_HOST : FW_ADDR_UNASSIGNED;
    return (uint8_t)(role == FW_PORT_UP ? r->address - 1 : r->address + 1);
}

void fw_router_report(fw_router_t *r, const fw_packet_t *p, int role, uint8_t reason, int64_t now) {
    if (p->type == FW_MSG_UNDELIVERABLE) {
        r->counters.reports_suppressed++;
        return;
    }
    fw_report_t rep;
    rep.src = r->address;
    rep.dst = FW_ADDR_HOST;
    rep.ttl = FW_DEFAULT_TTL;
    rep.msg_id = p->msg_id;
    rep.payload[0] = r->address;
    rep.payload[1] = next_hop(r, role);
    rep.payload[2] = p->src;
    rep.payload[3] = p->dst;
    rep.payload[4] = p->type;
    rep.payload[5] = (uint8_t)p->msg_id;
    rep.payload[6] = (uint8_t)(p->msg_id >> 8);
    rep.payload[7] = reason;
    r->counters.reports_sent++;
    if (r->links[FW_PORT_UP] == NULL) return; /* a joint always has its UP link */
    backlog_append(r, &rep);
    flush(r, now);
}

bool fw_router_send(fw_router_t *r, const fw_packet_t *p, int64_t now) {
    bool local;
    int role;
    route(r, p, NONE, &local, &role);
    if (role == NONE) return true;
    fw_link_t *l = r->links[role];
    if (l == NULL) {
        if (p->dst != FW_ADDR_BROADCAST) fw_router_report(r, p, role, FW_UNDELIV_NO_ROUTE, now);
        return true;
    }
    return fw_link_send(l, p, now, fw_urgent_type(p->type));
}

static void add_item(fw_router_t *r, int role, bool notice, fw_link_event_t *ev) {
    if (r->n_items >= FW_ROUTER_ITEMS) {
        r->items_overflow++;
        return;
    }
    fw_router_item_t *it = &r->items[r->n_items++];
    it->role = (uint8_t)role;
    it->notice = notice;
    it->event = (uint8_t)(ev - r->links[role]->events);
}

static void received(fw_router_t *r, fw_link_event_t *ev, int role, int64_t now) {
    const fw_packet_t *p = &r->links[role]->scratch.packet;
    bool local;
    int fwd;
    route(r, p, role, &local, &fwd);
    if (local) {
        r->counters.delivered++;
        add_item(r, role, false, ev);
    }
    if (fwd == NONE) {
        if (!local) {
            r->counters.no_route++;
            fw_router_report(r, p, role, FW_UNDELIV_NO_ROUTE, now);
        }
        return;
    }
    bool urgent = fw_urgent_type(p->type);
    if (r->counters.reserved[fwd] && !urgent) r->counters.reserved[fwd]--;
    fw_link_t *l = r->links[fwd];
    if (l == NULL) {
        if (p->dst != FW_ADDR_BROADCAST) {
            r->counters.no_route++;
            fw_router_report(r, p, fwd, FW_UNDELIV_NO_ROUTE, now);
        }
        return;
    }
    if (p->ttl == 0) {
        r->counters.ttl_expired++;
        fw_router_report(r, p, fwd, FW_UNDELIV_TTL, now);
        return;
    }
    fw_packet_t out = *p;
    out.ttl = (uint8_t)(p->ttl - 1);
    if (fw_link_send(l, &out, now, urgent)) {
        r->counters.forwarded++;
    } else {
        r->counters.queue_full++;
        fw_router_report(r, p, fwd, FW_UNDELIV_QUEUE_FULL, now);
    }
}

static void failed(fw_router_t *r, fw_link_event_t *ev, int role, int64_t now) {
    fw_packet_t tmp;
    const fw_packet_t *p = fw_link_event_packet(r->links[role], ev, &tmp);
    bool maybe = ev->flag != 0;
    if (p->type == FW_MSG_UNDELIVERABLE && role == FW_PORT_UP) {
        if (maybe) {
            r->counters.reports_resent++;
            fw_report_t rep;
            rep.src = p->src;
            rep.dst = p->dst;
            rep.ttl = p->ttl;
            rep.msg_id = p->msg_id;
            memset(rep.payload, 0, sizeof rep.payload);
            memcpy(rep.payload, p->payload, p->len < FW_UNDELIVERABLE_SIZE ? p->len : FW_UNDELIVERABLE_SIZE);
            backlog_append(r, &rep);
            flush(r, now);
        } else {
            r->counters.reports_suppressed++;
        }
        return;
    }
    if (p->src == r->address) {
        add_item(r, role, true, ev);
        if (fw_turned_around(p->type)) return;
    }
    if (p->dst == FW_ADDR_BROADCAST && !maybe &&
        (!r->chain_continues || role == FW_PORT_UP || fw_turned_around(p->type))) {
        r->counters.reports_suppressed++;
        return;
    }
    fw_router_report(r, p, role, ev->reason, now);
}

uint16_t fw_router_pump(fw_router_t *r, int64_t now) {
    r->n_items = 0;
    if (r->b_len) flush(r, now);
    for (int role = 0; role < 2; role++) {
        fw_link_t *l = r->links[role];
        r->processed[role] = 0;
        if (l == NULL) continue;
        while (r->processed[role] < l->ev_len) {
            fw_link_event_t *ev = fw_link_event_at(l, r->processed[role]);
            r->processed[role]++;
            switch (ev->kind) {
            case FW_EV_RECEIVED:
                received(r, ev, role, now);
                break;
            case FW_EV_ACKED:
                if (ev->head.src == r->address) add_item(r, role, true, ev);
                break;
            case FW_EV_FAILED:
                failed(r, ev, role, now);
                break;
            default:
                add_item(r, role, true, ev);
                break;
            }
        }
    }
    return r->n_items;
}

void fw_router_release(fw_router_t *r) {
    for (int role = 0; role < 2; role++) {
        fw_link_t *l = r->links[role];
        if (l == NULL) continue;
        fw_link_pop_events(l, r->processed[role]);
        r->processed[role] = 0;
    }
    r->n_items = 0;
}
