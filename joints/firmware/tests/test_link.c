/* Two hop-link endpoints joined back to back: the reset handshake, in-order exactly-once delivery, retransmission
 * after a lost frame, duplicate re-ack, give-up and DOWN, the urgent queue. */
#include <string.h>

#include "fw_link.h"
#include "test_util.h"

static int64_t now = 0;
/* msg_ids of the packets a link delivered, in order: a RECEIVED event's packet is the link's frame scratch, valid
 * until the next frame, so it is read at once (as the joint routes each frame at its delimiter) */
static uint16_t got[64];
static int n_got;

static void feed(fw_link_t *l, uint8_t byte) {
    uint16_t before = l->ev_len;
    fw_link_rx_byte(l, byte, now);
    for (uint16_t k = before; k < l->ev_len; k++) {
        fw_link_event_t *ev = fw_link_event_at(l, k);
        fw_packet_t tmp;
        if (ev->kind == FW_EV_RECEIVED && n_got < 64) got[n_got++] = fw_link_event_packet(l, ev, &tmp)->msg_id;
    }
}

/* Move every byte a has to send to b (unless `drop`), then the other way; returns bytes moved. */
static int shuttle(fw_link_t *a, fw_link_t *b, bool drop_ab) {
    uint8_t buf[FW_LINK_OUT_SIZE];
    int moved = 0;
    uint16_t n = fw_link_take_output(a, now, buf, sizeof buf);
    if (!drop_ab) {
        for (uint16_t i = 0; i < n; i++) feed(b, buf[i]);
    }
    moved += n;
    n = fw_link_take_output(b, now, buf, sizeof buf);
    for (uint16_t i = 0; i < n; i++) feed(a, buf[i]);
    return moved + n;
}

static void settle(fw_link_t *a, fw_link_t *b) {
    for (int i = 0; i < 20 && shuttle(a, b, false); i++) now += 1000;
}

static int count_events(fw_link_t *l, uint8_t kind) {
    int n = 0;
    for (uint16_t k = 0; k < l->ev_len; k++) n += fw_link_event_at(l, k)->kind == kind;
    return n;
}

static void drain(fw_link_t *l) {
    fw_link_pop_events(l, l->ev_len);
    n_got = 0;
}

static fw_packet_t packet(uint16_t id) {
    fw_packet_t p;
    memset(&p, 0, sizeof p);
    p.src = 0;
    p.dst = 1;
    p.type = FW_MSG_PING;
    p.msg_id = id;
    p.ttl = 32;
    return p;
}

int main(void) {
    fw_link_config_t c;
    fw_link_config_default(&c);
    CHECK(fw_link_config_ok(&c));
    CHECK(fw_link_timeout_ns(&c, FW_CONTROL_WIRE_SIZE) == 2840000 + 50000);
    fw_link_t a, b;
    fw_link_init(&a, &c, 10);
    fw_link_init(&b, &c, 20);
    settle(&a, &b);
    CHECK(fw_link_is_open(&a) && fw_link_is_open(&b));
    CHECK(count_events(&a, FW_EV_RESET) >= 1);
    drain(&a);
    drain(&b);
    /* in order, exactly once */
    for (uint16_t id = 1; id <= 5; id++) {
        fw_packet_t p = packet(id);
        CHECK(fw_link_send(&a, &p, now, false));
    }
    settle(&a, &b);
    CHECK(count_events(&b, FW_EV_RECEIVED) == 5 && count_events(&a, FW_EV_ACKED) == 5);
    CHECK(n_got == 5);
    for (int k = 0; k < 5; k++) CHECK(got[k] == k + 1);
    drain(&a);
    drain(&b);
    /* a lost frame is retransmitted at the timeout and delivered once */
    fw_packet_t p = packet(9);
    CHECK(fw_link_send(&a, &p, now, false));
    shuttle(&a, &b, true);
    CHECK(count_events(&b, FW_EV_RECEIVED) == 0);
    now = fw_link_next_deadline(&a);
    fw_link_handle_timer(&a, now);
    CHECK(a.counters.retransmits == 1);
    settle(&a, &b);
    CHECK(count_events(&b, FW_EV_RECEIVED) == 1 && count_events(&a, FW_EV_ACKED) == 1);
    drain(&a);
    drain(&b);
    /* the ack lost: the retransmission is a duplicate, re-acked, not delivered again */
    p = packet(10);
    fw_link_send(&a, &p, now, false);
    uint8_t buf[FW_LINK_OUT_SIZE];
    uint16_t n = fw_link_take_output(&a, now, buf, sizeof buf);
    for (uint16_t i = 0; i < n; i++) feed(&b, buf[i]);
    fw_link_take_output(&b, now, buf, sizeof buf); /* the ack, lost */
    now = fw_link_next_deadline(&a);
    fw_link_handle_timer(&a, now);
    settle(&a, &b);
    CHECK(count_events(&b, FW_EV_RECEIVED) == 1 && b.counters.duplicates == 1);
    drain(&a);
    drain(&b);
    /* urgent overtakes the ordinary queue */
    fw_packet_t q1 = packet(20), q2 = packet(21), e = packet(22);
    e.type = FW_MSG_ESTOP;
    fw_link_send(&a, &q1, now, false);
    fw_link_send(&a, &q2, now, false);
    CHECK(fw_link_send(&a, &e, now, true));
    settle(&a, &b);
    CHECK(count_events(&b, FW_EV_RECEIVED) == 3);
    CHECK(n_got == 3 && got[0] == 20 && got[1] == 22 && got[2] == 21);
    drain(&a);
    drain(&b);
    /* a dead peer: retries spent, the frame fails, RESET probes until the link is DOWN */
    p = packet(30);
    fw_link_send(&a, &p, now, false);
    for (int i = 0; i < 200 && a.state != FW_LS_DOWN; i++) {
        fw_link_take_output(&a, now, buf, sizeof buf);
        now = fw_link_next_deadline(&a);
        fw_link_handle_timer(&a, now);
    }
    CHECK(a.state == FW_LS_DOWN && count_events(&a, FW_EV_FAILED) == 1 && count_events(&a, FW_EV_DOWN) == 1);
    CHECK(fw_link_event_at(&a, 0)->reason == FW_UNDELIV_RETRIES);
    fw_packet_t tmp;
    CHECK(fw_link_event_packet(&a, fw_link_event_at(&a, 0), &tmp)->msg_id == 30);
    drain(&a);
    CHECK(a.busy == 0); /* every slot back in the pool once the events are popped */
    p = packet(31);
    p.len = 40;
    p.payload[39] = 0x5A;
    CHECK(fw_link_send(&a, &p, now, false) && count_events(&a, FW_EV_FAILED) == 1);
    /* failed at once on a DOWN link: the event keeps the whole packet (a slot is free) */
    const fw_packet_t *f = fw_link_event_packet(&a, fw_link_event_at(&a, 0), &tmp);
    CHECK(f->msg_id == 31 && f->len == 40 && f->payload[39] == 0x5A && a.slot_refused == 0 && a.head_only == 0);
    drain(&a);
    /* the queue limit */
    fw_link_init(&a, &c, 1);
    for (int i = 0; i < FW_LINK_QUEUE_LIMIT; i++) CHECK(fw_link_send(&a, &p, now, false));
    CHECK(!fw_link_send(&a, &p, now, false));
    CHECK(a.q_len == FW_LINK_QUEUE_LIMIT && a.slot_refused == 0 && a.head_only == 0);
    TEST_DONE();
}
