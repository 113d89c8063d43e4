/* The router of a joint at address 2: delivery, forwarding by address with ttl - 1, broadcasts, backpressure and
 * the UNDELIVERABLE report of a spent ttl. */
#include <string.h>

#include "fw_router.h"
#include "test_util.h"

static void open_link(fw_link_t *l) {
    l->state = FW_LS_OPEN;
    l->deadline = FW_NO_DEADLINE;
    l->out_len = 0;
    l->arm_on_drain = false;
}

static void receive(fw_link_t *l, const fw_packet_t *p) {
    uint8_t wire[FW_MAX_ENCODED];
    size_t n = fw_encode_data(l->rx_expected, 0, p, wire);
    for (size_t i = 0; i < n; i++) fw_link_rx_byte(l, wire[i], 0);
}

static fw_packet_t packet(uint8_t dst, uint8_t type, uint8_t ttl) {
    fw_packet_t p;
    memset(&p, 0, sizeof p);
    p.src = 0;
    p.dst = dst;
    p.type = type;
    p.msg_id = 7;
    p.ttl = ttl;
    if (type == FW_MSG_READ) p.len = 3;
    return p;
}

int main(void) {
    fw_link_config_t c;
    fw_link_config_default(&c);
    fw_link_t up, down;
    fw_link_init(&up, &c, 1);
    fw_link_init(&down, &c, 2);
    open_link(&up);
    open_link(&down);
    fw_router_t r;
    fw_router_init(&r, 2, &up, &down, NULL, NULL);
    fw_packet_t mine = packet(2, FW_MSG_READ, 32), below = packet(5, FW_MSG_READ, 32);
    fw_packet_t bcast = packet(FW_ADDR_BROADCAST, FW_MSG_HEARTBEAT, 32), spent = packet(5, FW_MSG_READ, 0);
    bcast.len = 4;
    /* each frame is pumped at its delimiter, as the joint does: the packet is the link's frame scratch */
    fw_packet_t tmp;
    receive(&up, &mine);
    CHECK(fw_router_pump(&r, 0) == 1); /* the packet for us */
    CHECK(!r.items[0].notice && fw_link_event_packet(&up, fw_router_item_event(&r, &r.items[0]), &tmp)->dst == 2);
    fw_router_release(&r);
    receive(&up, &below);
    CHECK(fw_router_pump(&r, 0) == 0); /* forwarded */
    fw_router_release(&r);
    receive(&up, &bcast);
    CHECK(fw_router_pump(&r, 0) == 1); /* delivered here and forwarded */
    CHECK(fw_link_event_packet(&up, fw_router_item_event(&r, &r.items[0]), &tmp)->dst == FW_ADDR_BROADCAST);
    fw_router_release(&r);
    receive(&up, &spent);
    CHECK(fw_router_pump(&r, 0) == 0); /* reported */
    fw_router_release(&r);
    CHECK(r.counters.forwarded == 2 && r.counters.ttl_expired == 1 && r.counters.reports_sent == 1);
    /* forwarded down with ttl - 1: the first in flight, the broadcast queued */
    CHECK(down.has_inflight && fw_link_inflight(&down)->dst == 5 && fw_link_inflight(&down)->ttl == 31 &&
          down.q_len == 1);
    /* the report goes up to the host: UNDELIVERABLE(reporter 2, next hop 3, ..., TTL) */
    const fw_packet_t *rep = fw_link_inflight(&up);
    CHECK(up.has_inflight && rep->type == FW_MSG_UNDELIVERABLE && rep->dst == FW_ADDR_HOST);
    CHECK(rep->payload[0] == 2 && rep->payload[1] == 3 && rep->payload[7] == FW_UNDELIV_TTL);
    /* backpressure: with the DOWN queue full, a packet to forward is not acked */
    fw_packet_t fill = packet(9, FW_MSG_READ, 32);
    while (fw_link_queue_space(&down) > 0) fw_link_send(&down, &fill, 0, false);
    uint32_t refused = up.counters.refused;
    receive(&up, &below);
    CHECK(up.counters.refused == refused + 1 && r.counters.refused == 1);
    /* an ESTOP is never refused */
    fw_packet_t estop = packet(5, FW_MSG_ESTOP, 32);
    estop.len = 1;
    receive(&up, &estop);
    fw_router_pump(&r, 0);
    fw_router_release(&r);
    CHECK(down.u_len == 1 && r.counters.urgent == 1);
    TEST_DONE();
}
