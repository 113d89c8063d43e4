/* Two hop-link endpoints joined back to back: the reset handshake, in-order exactly-once delivery, retransmission
 * after a lost frame, duplicate re-ack, give-up and DOWN, the urgent queue. */
#include <string.h>

#include "fw_link.h"
#include "test_util.h"

static int64_t now = 0;

/* Move every byte a has to send to b (unless `drop`), then the other way; returns bytes moved. */
static int shuttle(fw_link_t *a, fw_link_t *b, bool drop_ab) {
    uint8_t buf[FW_LINK_OUT_SIZE];
    int moved = 0;
    uint16_t n = fw_link_take_output(a, now, buf, sizeof buf);
    if (!drop_ab) {
        for (uint16_t i = 0; i < n; i++) fw_link_rx_byte(b, buf[i], now);
    }
    moved += n;
    n = fw_link_take_output(b, now, buf, sizeof buf);
    for (uint16_t i = 0; i < n; i++) fw_link_rx_byte(a, buf[i], now);
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
    l->ev_head = 0;
    l->ev_len = 0;
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
    for (uint16_t k = 0; k < 5; k++) CHECK(fw_link_event_at(&b, k)->packet.msg_id == k + 1);
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
    for (uint16_t i = 0; i < n; i++) fw_link_rx_byte(&b, buf[i], now);
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
    CHECK(fw_link_event_at(&b, 1)->packet.msg_id == 22);
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
    drain(&a);
    p = packet(31);
    CHECK(fw_link_send(&a, &p, now, false) && count_events(&a, FW_EV_FAILED) == 1);
    /* the queue limit */
    fw_link_init(&a, &c, 1);
    for (int i = 0; i < FW_LINK_QUEUE_LIMIT; i++) CHECK(fw_link_send(&a, &p, now, false));
    CHECK(!fw_link_send(&a, &p, now, false));
    TEST_DONE();
}
