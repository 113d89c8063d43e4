/* The hop link endpoint: a port of bus/link.py LinkEndpoint, driven by the generated table. See fw_link.h. */
#include "fw_link.h"

#include <string.h>

void fw_link_config_default(fw_link_config_t *c) {
    c->baud = FW_DEFAULT_BAUD;
    c->turnaround_ns = FW_LINK_TURNAROUND_NS;
    c->queue_limit = FW_LINK_QUEUE_LIMIT;
    c->urgent_limit = FW_LINK_URGENT_LIMIT;
    c->max_retries = FW_LINK_MAX_RETRIES;
    c->backoff_cap_ns = FW_LINK_BACKOFF_CAP_NS;
    c->reverse_bytes = FW_LINK_REVERSE_BYTES;
    c->quiet_ns = FW_LINK_BOOT_QUIET_NS;
}

bool fw_link_config_ok(const fw_link_config_t *c) {
    return c->baud >= 1 && c->queue_limit >= 0 && c->queue_limit <= FW_LINK_QUEUE_MAX && c->urgent_limit >= 0 &&
           c->urgent_limit <= FW_LINK_URGENT_MAX && c->max_retries >= 0 && c->max_retries <= 1000 &&
           c->backoff_cap_ns >= 1 && c->turnaround_ns >= 0 && c->reverse_bytes >= 0 && c->quiet_ns >= 0;
}

int64_t fw_wire_time_ns(int64_t nbytes, int64_t baud) {
    int64_t bits = nbytes * FW_BITS_PER_BYTE * (int64_t)FW_NS_PER_S;
    return (bits + baud - 1) / baud; /* rounded up: nbytes >= 0 */
}

int64_t fw_link_timeout_ns(const fw_link_config_t *c, int64_t frame_bytes) {
    return fw_wire_time_ns(frame_bytes + FW_CONTROL_WIRE_SIZE + c->reverse_bytes, c->baud) + c->turnaround_ns;
}

static int64_t fast_timeout_ns(const fw_link_config_t *c, int64_t frame_bytes) {
    return fw_wire_time_ns(frame_bytes + FW_CONTROL_WIRE_SIZE, c->baud) + c->turnaround_ns;
}

/* ------------------------------------------------------------------------------------------------ helpers */
static fw_link_event_t *push_event(fw_link_t *l, uint8_t kind) {
    if (l->ev_len >= FW_LINK_EVENTS) {
        l->ev_overflow++;
        return NULL;
    }
    fw_link_event_t *ev = &l->events[(l->ev_head + l->ev_len) % FW_LINK_EVENTS];
    l->ev_len++;
    ev->kind = kind;
    ev->reason = 0;
    ev->flag = 0;
    ev->slot = FW_LINK_NO_SLOT;
    return ev;
}

static bool slot_free_exists(const fw_link_t *l) {
    return (l->busy & ((1u << FW_LINK_SLOTS) - 1u)) != ((1u << FW_LINK_SLOTS) - 1u);
}

/* A free slot holding a copy of p, or FW_LINK_NO_SLOT. */
static uint8_t slot_take(fw_link_t *l, const fw_packet_t *p) {
    for (uint8_t s = 0; s < FW_LINK_SLOTS; s++) {
        if (!(l->busy & (1u << s))) {
            l->busy = (uint16_t)(l->busy | (1u << s));
            l->pkts[s] = *p;
            return s;
        }
    }
    return FW_LINK_NO_SLOT;
}

static void slot_release(fw_link_t *l, uint8_t s) {
    if (s != FW_LINK_NO_SLOT) l->busy = (uint16_t)(l->busy & ~(1u << s));
}

static void set_head(fw_packet_head_t *h, const fw_packet_t *p) {
    h->src = p->src;
    h->dst = p->dst;
    h->type = p->type;
    h->ttl = p->ttl;
    h->msg_id = p->msg_id;
    h->len = (uint8_t)(p->len < FW_LINK_HEAD_PAYLOAD ? p->len : FW_LINK_HEAD_PAYLOAD);
    memcpy(h->payload, p->payload, h->len);
}

const fw_packet_t *fw_link_event_packet(const fw_link_t *l, const fw_link_event_t *ev, fw_packet_t *tmp) {
    if (ev->kind == FW_EV_RECEIVED) return &l->scratch.packet;
    if (ev->slot != FW_LINK_NO_SLOT) return &l->pkts[ev->slot];
    const fw_packet_head_t *h = &ev->head;
    tmp->src = h->src;
    tmp->dst = h->dst;
    tmp->type = h->type;
    tmp->ttl = h->ttl;
    tmp->msg_id = h->msg_id;
    tmp->len = h->len;
    memcpy(tmp->payload, h->payload, h->len);
    return tmp;
}

void fw_link_pop_events(fw_link_t *l, uint16_t n) {
    for (uint16_t k = 0; k < n && l->ev_len; k++) {
        fw_link_event_t *ev = &l->events[l->ev_head];
        if (ev->kind == FW_EV_FAILED) slot_release(l, ev->slot);
        l->ev_head = (uint16_t)((l->ev_head + 1) % FW_LINK_EVENTS);
        l->ev_len--;
    }
}

static void out_append(fw_link_t *l, const uint8_t *wire, size_t n) {
    if (l->out_len + n > FW_LINK_OUT_SIZE) {
        l->out_overflow++;
        return;
    }
    memcpy(&l->out[l->out_len], wire, n);
    l->out_len = (uint16_t)(l->out_len + n);
}

static bool urgent_mode(const fw_link_t *l) {
    return l->has_inflight && (l->inflight_urgent || l->u_len > 0);
}

static int64_t current_timeout(const fw_link_t *l) {
    if (urgent_mode(l)) return l->fast_timeout;
    int64_t limit = l->config.backoff_cap_ns > 2 * l->timeout ? l->config.backoff_cap_ns : 2 * l->timeout;
    int64_t t = l->timeout;
    for (int32_t k = 0; k < l->attempts && t < limit; k++) t <<= 1;
    return t < limit ? t : limit;
}

static void emit(fw_link_t *l, const uint8_t *wire, size_t n, bool timed, int64_t now) {
    out_append(l, wire, n);
    l->counters.frames_sent++;
    if (timed) {
        l->arm_on_drain = true;
        l->deadline = now + current_timeout(l);
    }
}

static void emit_control(fw_link_t *l, uint8_t kind, uint8_t seq, uint8_t flags, bool timed, int64_t now) {
    uint8_t wire[FW_CONTROL_WIRE_SIZE];
    size_t n = fw_encode_control(kind, seq, flags, wire);
    emit(l, wire, n, timed, now);
}

/* Put the packet of `slot` in flight. */
static void transmit(fw_link_t *l, uint8_t slot, int64_t now, bool urgent) {
    uint8_t wire[FW_MAX_ENCODED];
    size_t n = fw_encode_data(l->tx_seq, 0, &l->pkts[slot], wire);
    l->inflight = slot;
    l->has_inflight = true;
    l->inflight_urgent = urgent;
    l->attempts = 0;
    l->timeout = fw_link_timeout_ns(&l->config, (int64_t)n);
    l->fast_timeout = fast_timeout_ns(&l->config, (int64_t)n);
    l->counted_at = now;
    l->counters.data_sent++;
    l->counters.frames_sent++;
    out_append(l, wire, n);
    l->arm_on_drain = true;
    l->deadline = now + l->timeout;
}

static void start_next(fw_link_t *l, int64_t now) {
    if (l->u_len) {
        uint8_t slot = l->urgent[l->u_head];
        l->u_head = (uint8_t)((l->u_head + 1) % FW_LINK_URGENT_MAX);
        l->u_len--;
        transmit(l, slot, now, true);
    } else if (l->q_len) {
        uint8_t slot = l->queue[l->q_head];
        l->q_head = (uint8_t)((l->q_head + 1) % FW_LINK_QUEUE_MAX);
        l->q_len--;
        transmit(l, slot, now, false);
    } else {
        l->deadline = FW_NO_DEADLINE;
        l->arm_on_drain = false;
    }
}

/* A FAILED event for p, which the event keeps in `slot` (its slot in the pool, or none). */
static void fail(fw_link_t *l, const fw_packet_t *p, uint8_t slot, uint8_t reason, bool maybe) {
    l->counters.failures++;
    fw_link_event_t *ev = push_event(l, FW_EV_FAILED);
    if (ev) {
        ev->reason = reason;
        ev->flag = maybe;
        ev->slot = slot;
        set_head(&ev->head, p);
        if (slot == FW_LINK_NO_SLOT && p->len > FW_LINK_HEAD_PAYLOAD) l->head_only++;
    } else {
        slot_release(l, slot);
    }
}

static void fail_inflight(fw_link_t *l, uint8_t reason) {
    if (l->has_inflight) {
        fail(l, &l->pkts[l->inflight], l->inflight, reason, true);
        l->has_inflight = false;
    }
}

static void begin_reset(fw_link_t *l, int64_t now, bool count) {
    l->tx_seq = 0;
    l->rx_expected = 0;
    l->nonce = (uint8_t)(l->nonce + 1);
    l->attempts = 0;
    l->timeout = fw_link_timeout_ns(&l->config, FW_CONTROL_WIRE_SIZE);
    l->nonce_live = true;
    if (count) l->counters.resets_sent++;
    emit_control(l, FW_KIND_RESET, l->nonce, 0, true, now);
}

static void boot(fw_link_t *l, int64_t now) {
    if (l->deadline == FW_NO_DEADLINE) {
        l->deadline = now + l->config.quiet_ns;
    } else if (now >= l->deadline) {
        l->booting = false;
        begin_reset(l, now, true);
    }
}

static void answer(fw_link_t *l, uint8_t nonce, int64_t now) {
    l->peer_nonce = nonce;
    l->heard_since_reset = false;
    l->counters.reset_answers++;
    emit_control(l, FW_KIND_RESET_ACK, nonce, 0, false, now);
}

static void do_retransmit(fw_link_t *l, int64_t now) {
    l->counters.retransmits++;
    bool counted = !urgent_mode(l) || now - l->counted_at >= l->timeout;
    if (counted && l->attempts < l->config.max_retries) {
        l->attempts++;
        l->counted_at = now;
    }
    if (l->has_inflight) {
        uint8_t wire[FW_MAX_ENCODED];
        size_t n = fw_encode_data(l->tx_seq, FW_FLAG_RETRANSMIT, &l->pkts[l->inflight], wire);
        emit(l, wire, n, true, now);
    } else {
        emit_control(l, FW_KIND_RESET, l->nonce, FW_FLAG_RETRANSMIT, true, now);
    }
}

/* Run the action of TABLE[state][input]: `p` is the packet for SEND inputs, `f` the frame for frame inputs. */
static void dispatch(fw_link_t *l, unsigned input, const fw_packet_t *p, const fw_frame_t *f, int64_t now) {
    uint8_t action = fw_link_table[l->state][input][1];
    l->state = fw_link_table[l->state][input][0];
    fw_link_counters_t *c = &l->counters;
    fw_link_event_t *ev;
    switch (action) {
    case FW_ACT_QUEUE:
        l->queue[(l->q_head + l->q_len) % FW_LINK_QUEUE_MAX] = slot_take(l, p); /* fw_link_send saw a free one */
        l->q_len++;
        if (l->state == FW_LS_OPEN && !l->has_inflight) start_next(l, now);
        break;
    case FW_ACT_QUEUE_URGENT: {
        int64_t backoff = current_timeout(l);
        if (!l->u_len) l->urgent_since = now;
        l->urgent[(l->u_head + l->u_len) % FW_LINK_URGENT_MAX] = slot_take(l, p);
        l->u_len++;
        if (l->state == FW_LS_OPEN && !l->has_inflight) {
            start_next(l, now);
        } else if (l->has_inflight && l->deadline != FW_NO_DEADLINE && !l->arm_on_drain) {
            int64_t d = l->deadline - backoff + l->fast_timeout;
            l->deadline = d > now ? d : now;
        }
        break;
    }
    case FW_ACT_FAIL_NOW:
        fail(l, p, slot_take(l, p), FW_UNDELIV_LINK_DOWN, false);
        break;
    case FW_ACT_DELIVER:
        l->rx_expected = (uint8_t)(f->seq + 1);
        emit_control(l, FW_KIND_ACK, f->seq, 0, false, now);
        c->data_delivered++;
        push_event(l, FW_EV_RECEIVED); /* its packet: l->scratch, until the next frame */
        break;
    case FW_ACT_REACK:
        c->duplicates++;
        emit_control(l, FW_KIND_ACK, f->seq, 0, false, now);
        break;
    case FW_ACT_WITHHOLD:
        c->refused++;
        break;
    case FW_ACT_DROP:
        if (l->state != FW_LS_OPEN && (f->kind == FW_KIND_DATA || f->kind == FW_KIND_ACK)) {
            c->dropped_syncing++;
        } else if (f->kind == FW_KIND_ACK) {
            c->stray_acks++;
        } else if (f->kind == FW_KIND_RESET_ACK) {
            c->stale_reset_acks++;
        }
        break;
    case FW_ACT_ACKED:
        l->has_inflight = false;
        l->tx_seq = (uint8_t)(l->tx_seq + 1);
        c->acked++;
        ev = push_event(l, FW_EV_ACKED);
        if (ev) ev->head.src = l->pkts[l->inflight].src;
        slot_release(l, l->inflight);
        start_next(l, now);
        break;
    case FW_ACT_RESYNC:
        c->out_of_window++;
        fail_inflight(l, FW_UNDELIV_LINK_RESET);
        begin_reset(l, now, true);
        break;
    case FW_ACT_ACCEPT_RESET:
        c->resets_accepted++;
        fail_inflight(l, FW_UNDELIV_LINK_RESET);
        l->tx_seq = 0;
        l->rx_expected = 0;
        l->nonce_live = false;
        l->attempts = 0;
        answer(l, f->seq, now);
        ev = push_event(l, FW_EV_RESET);
        if (ev) ev->flag = 1;
        start_next(l, now);
        break;
    case FW_ACT_ANSWER_RESET:
        answer(l, f->seq, now);
        break;
    case FW_ACT_OPENED:
        ev = push_event(l, FW_EV_RESET);
        if (ev) ev->flag = 0;
        start_next(l, now);
        break;
    case FW_ACT_RETRANSMIT:
        do_retransmit(l, now);
        break;
    case FW_ACT_GIVE_UP_DATA:
        fail_inflight(l, FW_UNDELIV_RETRIES);
        begin_reset(l, now, true);
        break;
    case FW_ACT_GO_DOWN:
        c->link_down++;
        while (l->u_len) {
            fail(l, &l->pkts[l->urgent[l->u_head]], l->urgent[l->u_head], FW_UNDELIV_LINK_DOWN, false);
            l->u_head = (uint8_t)((l->u_head + 1) % FW_LINK_URGENT_MAX);
            l->u_len--;
        }
        while (l->q_len) {
            fail(l, &l->pkts[l->queue[l->q_head]], l->queue[l->q_head], FW_UNDELIV_LINK_DOWN, false);
            l->q_head = (uint8_t)((l->q_head + 1) % FW_LINK_QUEUE_MAX);
            l->q_len--;
        }
        push_event(l, FW_EV_DOWN);
        do_retransmit(l, now);
        break;
    case FW_ACT_COUNT_LINE:
        if (f->line_error == FW_LINE_CRC) {
            c->crc_errors++;
        } else {
            c->framing_errors++;
        }
        ev = push_event(l, FW_EV_LINE_ERROR);
        if (ev) ev->reason = f->line_error;
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------------------------------------- inputs */
void fw_link_init(fw_link_t *l, const fw_link_config_t *c, uint8_t random_byte) {
    memset(l, 0, sizeof *l);
    l->config = *c;
    fw_deframer_init(&l->deframer);
    l->state = FW_LS_SYNCING;
    l->deadline = FW_NO_DEADLINE;
    l->nonce = random_byte;
    l->peer_nonce = -1;
    l->booting = c->quiet_ns > 0;
    if (!l->booting) begin_reset(l, 0, true);
}

void fw_link_touch(fw_link_t *l, int64_t now) {
    if (l->booting && l->deadline == FW_NO_DEADLINE) boot(l, now);
}

bool fw_link_send(fw_link_t *l, const fw_packet_t *p, int64_t now, bool urgent) {
    if (urgent) {
        if (l->u_len >= l->config.urgent_limit) return false;
    } else if (l->q_len >= l->config.queue_limit) {
        return false;
    }
    if (l->state != FW_LS_DOWN && !slot_free_exists(l)) { /* never: FW_LINK_SLOTS covers the worst case */
        l->slot_refused++;
        return false;
    }
    if (l->state == FW_LS_OPEN && !l->has_inflight) {
        transmit(l, slot_take(l, p), now, urgent);
    } else {
        dispatch(l, urgent ? FW_IN_SEND_URGENT : FW_IN_SEND, p, NULL, now);
    }
    if (urgent) l->counters.urgent++;
    return true;
}

static void receive_item(fw_link_t *l, const fw_frame_t *f, int64_t now) {
    unsigned input;
    if (f->line_error) {
        dispatch(l, FW_IN_LINE_ERROR, NULL, f, now);
        return;
    }
    l->counters.frames_received++;
    if (f->kind == FW_KIND_DATA) {
        l->heard_since_reset = true;
        if (f->seq == l->rx_expected) {
            if (l->state != FW_LS_OPEN) {
                input = FW_IN_DATA_NEW;
            } else if (l->accept == NULL || l->accept(l->accept_ctx, l->accept_role, &f->packet)) {
                input = FW_IN_DATA_NEW;
            } else {
                input = FW_IN_DATA_REFUSED;
            }
        } else if (f->seq == (uint8_t)(l->rx_expected - 1)) {
            input = FW_IN_DATA_DUP;
        } else {
            input = FW_IN_DATA_OUT_OF_WINDOW;
        }
    } else if (f->kind == FW_KIND_ACK) {
        l->heard_since_reset = true;
        input = (l->has_inflight && f->seq == l->tx_seq) ? FW_IN_ACK_MATCH : FW_IN_ACK_STRAY;
    } else if (f->kind == FW_KIND_RESET) {
        bool dup = l->booting || (f->seq == l->peer_nonce && !l->heard_since_reset);
        input = dup ? FW_IN_RESET_DUP : FW_IN_RESET_NEW;
    } else {
        input = (f->seq == l->nonce && l->nonce_live) ? FW_IN_RESET_ACK_MATCH : FW_IN_RESET_ACK_STALE;
    }
    dispatch(l, input, NULL, f, now);
}

void fw_link_rx_byte(fw_link_t *l, uint8_t byte, int64_t now) {
    fw_link_touch(l, now);
    l->counters.bytes_received++;
    if (fw_deframer_byte(&l->deframer, byte, &l->scratch)) receive_item(l, &l->scratch, now);
}

void fw_link_handle_timer(fw_link_t *l, int64_t now) {
    if (l->booting) {
        boot(l, now);
        return;
    }
    if (l->deadline == FW_NO_DEADLINE || now < l->deadline) return;
    bool spent = l->attempts >= l->config.max_retries;
    if (!spent && l->u_len && l->has_inflight && !l->inflight_urgent) {
        spent = now - l->urgent_since >= FW_URGENT_WAIT_TIMEOUTS * l->timeout;
    }
    dispatch(l, spent ? FW_IN_GIVE_UP : FW_IN_TIMEOUT, NULL, NULL, now);
}

uint16_t fw_link_take_output(fw_link_t *l, int64_t now, uint8_t *out, uint16_t cap) {
    fw_link_touch(l, now);
    if (!l->out_len) return 0;
    uint16_t n = l->out_len < cap ? l->out_len : cap;
    memcpy(out, l->out, n);
    memmove(l->out, &l->out[n], (size_t)(l->out_len - n));
    l->out_len = (uint16_t)(l->out_len - n);
    l->counters.bytes_sent += n;
    if (l->arm_on_drain) {
        l->arm_on_drain = false;
        l->deadline = now + current_timeout(l);
    }
    return n;
}

void fw_link_reset(fw_link_t *l, int64_t now) {
    l->booting = false;
    fail_inflight(l, FW_UNDELIV_LINK_RESET);
    l->state = FW_LS_SYNCING;
    begin_reset(l, now, true);
}
