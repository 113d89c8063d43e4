/* The joint node: a port of joints/node.py JointNode. See include/fw_joint.h. */
#include <string.h>

#include "joint_priv.h"

#define HALF_IDS 0x8000u

void fw_joint_config_default(fw_joint_config_t *c, uint16_t model, uint32_t serial) {
    memset(c, 0, sizeof *c);
    c->model = model;
    c->serial = serial;
    c->period_ns = FW_DEFAULT_PERIOD_NS;
    c->boot_ns = FW_DEFAULT_BOOT_NS;
    c->forward_latency_ns = FW_FORWARD_LATENCY_NS;
    c->max_baud = FW_MAX_UART_BAUD;
    fw_link_config_default(&c->link);
    c->port_bauds[0] = c->port_bauds[1] = c->link.baud;
}

/* ------------------------------------------------------------------------------------------------- boot */
static void start(fw_joint_t *j, int64_t now) {
    fw_rates_init(j);
    for (unsigned port = 0; port < 2; port++) {
        fw_link_config_t lc = j->config.link;
        lc.baud = j->port_rates[port];
        uint8_t nonce = j->hal.nonce ? j->hal.nonce(j->hal.ctx, (uint8_t)port, j->boots) : 0;
        fw_link_init(&j->links[port], &lc, nonce);
    }
    fw_router_init(&j->router, FW_ADDR_UNASSIGNED, &j->links[FW_PORT_UP], &j->links[FW_PORT_DOWN],
                   fw_node_local_accept, j);
    ctl_init(&j->control, &j->regs, &j->motor, j->config.period_ns, now);
    j->clearing_flags = 0;
    j->clearing_mark = 0;
    fw_node_set_is_last(j, -1);
    j->down_answered = false;
    j->has_held_enumerate = false;
    j->msg_id = 0;
    fw_cyclic_reset(j);
    j->telemetry_at = FW_NO_DEADLINE;
    j->estop_msg_id = -1;
    j->estop_until = 0;
    if (j->boots) {
        uint8_t fault[6] = {FW_FAULT_REBOOTED, 1, 0, 0, 0, 0};
        fw_put_u32(&fault[2], j->boots);
        fw_node_send_to_host(j, FW_MSG_FAULT, fault, sizeof fault, now);
    }
}

void fw_joint_init(fw_joint_t *j, const fw_joint_config_t *c, const fw_hal_t *hal, const fw_hal_motor_t *motor,
                   int64_t now) {
    memset(j, 0, sizeof *j);
    j->config = *c;
    j->hal = *hal;
    j->motor = *motor;
    fw_regs_init(&j->regs, c->model, c->serial, FW_FIRMWARE_MAJOR, FW_FIRMWARE_MINOR);
    fw_regs_set(&j->regs, FW_REG_UP_BAUD, c->port_bauds[0]);
    fw_regs_set(&j->regs, FW_REG_DOWN_BAUD, c->port_bauds[1]);
    j->booting_until = FW_NO_DEADLINE;
    j->reboot_at = FW_NO_DEADLINE;
    start(j, now);
}

void fw_joint_reboot(fw_joint_t *j, int64_t now) {
    j->motor.advance(j->motor.ctx, now);
    j->motor.coast(j->motor.ctx);
    j->reboot_at = FW_NO_DEADLINE;
    j->booting_until = now + j->config.boot_ns;
    j->counters.reboots++;
}

void fw_joint_schedule_reboot(fw_joint_t *j, int64_t now) { j->reboot_at = now; }

static void finish_boot(fw_joint_t *j, int64_t now) {
    j->booting_until = FW_NO_DEADLINE;
    j->boots++;
    fw_regs_reset_volatile(&j->regs);
    start(j, now);
}

void fw_node_set_is_last(fw_joint_t *j, int8_t last) {
    j->is_last = last;
    j->router.chain_continues = last == 0;
    j->router.nothing_down = last == 1;
}

void fw_node_set_address(fw_joint_t *j, uint8_t address) {
    fw_regs_set(&j->regs, FW_REG_BUS_ADDRESS, address);
    j->router.address = address;
}

/* ------------------------------------------------------------------------------------- control coupling */
static void run_control(fw_joint_t *j, int64_t now) {
    ctl_core_t *c = &j->control;
    if (ctl_next_deadline(c) > now) return;
    ctl_handle_timer(c, now);
    const ctl_state_t *s = ctl_state(c);
    fw_regs_set_state_block(&j->regs, s->position, s->velocity, s->current, s->temperature, s->voltage, s->status);
    j->regs.mem[FW_REGADDR_TORQUE_ENABLE] = ctl_torque(c) ? 1 : 0;
    j->regs.mem[FW_REGADDR_ESTOP] = (s->status & FW_STATUS_ESTOPPED) ? 1 : 0;
    if (!ctl_events_pending(c)) return;
    ctl_event_t ev;
    while (ctl_next_event(c, &ev)) {
        if (ev.active) fw_regs_set(&j->regs, FW_REG_FAULT_CODE, ev.code);
        uint8_t fault[6] = {ev.code, ev.active ? 1 : 0, 0, 0, 0, 0};
        fw_put_u32(&fault[2], (uint32_t)ev.value);
        fw_node_send_to_host(j, FW_MSG_FAULT, fault, sizeof fault, now);
    }
}

void fw_node_set_telemetry(fw_joint_t *j, int64_t period_ms, int64_t now) {
    j->telemetry_at = period_ms ? now + period_ms * FW_NS_PER_MS : FW_NO_DEADLINE;
}

static void send_state(fw_joint_t *j, int64_t now) {
    const ctl_state_t *s = ctl_state(&j->control);
    int64_t period = fw_regs_get(&j->regs, FW_REG_STATE_PERIOD);
    j->telemetry_at = period ? now + period * FW_NS_PER_MS : FW_NO_DEADLINE;
    if (fw_joint_address(j) != FW_ADDR_UNASSIGNED) {
        uint8_t st[15];
        st[0] = s->status;
        fw_put_u32(&st[1], (uint32_t)s->position);
        fw_put_u32(&st[5], (uint32_t)s->velocity);
        fw_put_u16(&st[9], (uint16_t)s->current);
        fw_put_u16(&st[11], (uint16_t)s->temperature);
        fw_put_u16(&st[13], s->voltage);
        fw_node_send_to_host(j, FW_MSG_STATE, st, sizeof st, now);
    }
}

/* ------------------------------------------------------------------------------------------------ routing */
bool fw_node_send(fw_joint_t *j, const fw_packet_t *p, int64_t now) {
    if (fw_router_send(&j->router, p, now)) return true;
    j->counters.tx_refused++;
    return false;
}

static bool send_made(fw_joint_t *j, uint8_t dst, uint8_t type, uint16_t msg_id, const uint8_t *payload,
                      uint16_t len, int64_t now) {
    fw_packet_t p;
    p.src = fw_joint_address(j);
    p.dst = dst;
    p.type = type;
    p.msg_id = msg_id;
    p.ttl = FW_DEFAULT_TTL;
    p.len = len;
    memcpy(p.payload, payload, len);
    return fw_node_send(j, &p, now);
}

bool fw_node_send_to_host(fw_joint_t *j, uint8_t type, const uint8_t *payload, uint16_t len, int64_t now) {
    j->msg_id = (uint16_t)(j->msg_id + 1);
    return send_made(j, FW_ADDR_HOST, type, j->msg_id, payload, len, now);
}

bool fw_node_reply(fw_joint_t *j, const fw_packet_t *request, uint8_t type, const uint8_t *payload, uint16_t len,
                   int64_t now) {
    return send_made(j, request->src, type, request->msg_id, payload, len, now);
}

bool fw_node_down_usable(const fw_joint_t *j) { return j->links[FW_PORT_DOWN].state != FW_LS_DOWN; }

static bool down_silent(const fw_joint_t *j) {
    const fw_link_counters_t *c = &j->links[FW_PORT_DOWN].counters;
    return !j->down_answered && c->resets_sent + c->retransmits >= FW_ENUMERATE_PROBES;
}

static void release_enumerate(fw_joint_t *j, int64_t now) {
    if (!j->has_held_enumerate) return;
    if (j->down_answered) {
        if (j->held_enumerate.ttl && fw_node_down_usable(j) && fw_link_queue_space(&j->links[FW_PORT_DOWN]) < 1) {
            return;
        }
        j->has_held_enumerate = false;
        fw_node_set_is_last(j, 0);
        fw_packet_t p = j->held_enumerate;
        if (!fw_node_pass_down(j, &p, now, false)) fw_handlers_turn_around(j, &p, now);
    } else if (down_silent(j) || !fw_node_down_usable(j)) {
        j->has_held_enumerate = false;
        fw_packet_t p = j->held_enumerate;
        fw_handlers_turn_around(j, &p, now);
    }
}

void fw_node_hold_enumerate(fw_joint_t *j, const fw_packet_t *p, int64_t now) {
    j->held_enumerate = *p;
    j->has_held_enumerate = true;
    release_enumerate(j, now);
}

uint8_t fw_node_pending_clears(const fw_joint_t *j) {
    if (j->clearing_flags && (int32_t)(ctl_commands_taken(&j->control) - j->clearing_mark) < 0) {
        return j->clearing_flags;
    }
    return 0;
}

void fw_node_note_clear(fw_joint_t *j, uint8_t flags) {
    j->clearing_flags = (uint8_t)(fw_node_pending_clears(j) | flags);
    j->clearing_mark = ctl_commands_posted(&j->control);
}

bool fw_node_pass_down(fw_joint_t *j, const fw_packet_t *p, int64_t now, bool urgent) {
    bool missed_below = j->is_last == 0 && !fw_turned_around(p->type);
    if (p->ttl == 0 || j->is_last == 1 || !fw_node_down_usable(j)) {
        if (missed_below) {
            fw_router_report(&j->router, p, FW_PORT_DOWN, p->ttl == 0 ? FW_UNDELIV_TTL : FW_UNDELIV_LINK_DOWN, now);
        }
        return false;
    }
    fw_packet_t out = *p;
    out.src = fw_joint_address(j);
    out.ttl = (uint8_t)(p->ttl - 1);
    if (!fw_link_send(&j->links[FW_PORT_DOWN], &out, now, urgent)) {
        j->counters.tx_refused++;
        if (urgent || missed_below) fw_router_report(&j->router, &out, FW_PORT_DOWN, FW_UNDELIV_QUEUE_FULL, now);
        return false;
    }
    j->counters.forwarded++;
    return true;
}

void fw_node_took_estop(fw_joint_t *j, uint16_t msg_id, int64_t now) {
    int32_t last = j->estop_msg_id;
    uint16_t d = (uint16_t)(msg_id - (uint16_t)last);
    if (last < 0 || (d > 0 && d < HALF_IDS)) j->estop_msg_id = msg_id;
    j->estop_until = now + FW_ESTOP_MEMORY_NS;
}

bool fw_node_overtaken_by_estop(const fw_joint_t *j, uint16_t msg_id) {
    if (j->estop_msg_id < 0) return false;
    uint16_t d = (uint16_t)((uint16_t)j->estop_msg_id - msg_id);
    return d > 0 && d < HALF_IDS;
}

static void newer_than_estop(fw_joint_t *j, const fw_packet_t *p) {
    if (j->estop_msg_id < 0 || p->type == FW_MSG_ESTOP) return;
    uint16_t d = (uint16_t)(p->msg_id - (uint16_t)j->estop_msg_id);
    if (d > 0 && d < HALF_IDS) j->estop_msg_id = -1;
}

bool fw_node_local_accept(void *ctx, const fw_packet_t *p) {
    fw_joint_t *j = ctx;
    if (p->type == FW_MSG_ESTOP) return true;
    if (p->type == FW_MSG_CYCLE_REPLY) return fw_link_queue_space(&j->links[FW_PORT_UP]) >= 1;
    if (ctl_commands_free(&j->control) < FW_COMMAND_SLOTS_PER_REQUEST ||
        fw_link_queue_space(&j->links[FW_PORT_UP]) < 1) {
        return false;
    }
    if (fw_self_forwarded(p->type) && fw_link_is_open(&j->links[FW_PORT_DOWN])) {
        return fw_link_queue_space(&j->links[FW_PORT_DOWN]) >= 1;
    }
    return true;
}

static void pump(fw_joint_t *j, int64_t now) {
    if (j->estop_msg_id >= 0 && now >= j->estop_until) j->estop_msg_id = -1;
    for (int round = 0; round < 8; round++) {
        if (j->has_held_enumerate) release_enumerate(j, now);
        uint16_t n = fw_router_pump(&j->router, now);
        if (!n) {
            fw_router_release(&j->router);
            return;
        }
        for (uint16_t k = 0; k < n; k++) {
            fw_router_item_t *it = &j->router.items[k];
            fw_link_event_t *ev = fw_router_item_event(&j->router, it);
            fw_packet_t tmp;
            if (!it->notice) {
                const fw_packet_t *p = fw_link_event_packet(&j->links[it->role], ev, &tmp);
                j->counters.handled++;
                if (it->role == FW_PORT_UP && j->estop_msg_id >= 0) newer_than_estop(j, p);
                fw_handlers_dispatch(j, it->role, p, now);
            } else if (ev->kind == FW_EV_FAILED) {
                j->counters.delivery_failures++;
                fw_handlers_delivery_failed(j, it->role, fw_link_event_packet(&j->links[it->role], ev, &tmp),
                                            ev->reason, now);
            } else if (it->role == FW_PORT_DOWN && ev->kind == FW_EV_RESET) {
                j->down_answered = true;
            } else if (it->role == FW_PORT_UP && ev->kind == FW_EV_RESET && ev->flag) {
                j->estop_msg_id = -1;
            }
        }
        fw_router_release(&j->router);
    }
}

/* ---------------------------------------------------------------------------------- node-driving contract */
void fw_joint_rx_block(fw_joint_t *j, unsigned port, const uint8_t *data, uint32_t n, int64_t now) {
    if (fw_joint_booting(j) || port > 1) {
        j->counters.rx_while_booting += n;
        return;
    }
    run_control(j, now);
    fw_link_t *l = &j->links[port];
    for (uint32_t k = 0; k < n; k++) {
        fw_link_rx_byte(l, data[k], now);
        if (data[k] == 0) pump(j, now); /* a completed frame is routed and handled before the next is taken */
    }
    if (n == 0 || data[n - 1] != 0) pump(j, now);
}

void fw_joint_rx_byte(fw_joint_t *j, unsigned port, uint8_t byte, int64_t now) {
    fw_joint_rx_block(j, port, &byte, 1, now);
}

uint32_t fw_joint_tx(fw_joint_t *j, unsigned port, int64_t now, uint8_t *out, uint32_t cap) {
    if (fw_joint_booting(j) || port > 1) return 0;
    return fw_link_take_output(&j->links[port], now, out, (uint16_t)(cap > 0xFFFF ? 0xFFFF : cap));
}

int64_t fw_joint_next_deadline(const fw_joint_t *j) {
    if (fw_joint_booting(j)) return j->booting_until;
    int64_t first = ctl_next_deadline(&j->control);
    int64_t t[5] = {j->reboot_at, j->telemetry_at, fw_link_next_deadline(&j->links[0]),
                    fw_link_next_deadline(&j->links[1]), fw_rates_deadline(j)};
    for (int k = 0; k < 5; k++) {
        if (t[k] < first) first = t[k];
    }
    return first;
}

void fw_joint_handle_timer(fw_joint_t *j, int64_t now) {
    if (fw_joint_booting(j)) {
        j->motor.advance(j->motor.ctx, now);
        if (now >= j->booting_until) finish_boot(j, now);
        return;
    }
    if (j->reboot_at != FW_NO_DEADLINE && now >= j->reboot_at) {
        fw_joint_reboot(j, now);
        return;
    }
    if (fw_rates_deadline(j) != FW_NO_DEADLINE && fw_rates_handle_timer(j, now)) fw_rates_retime(j);
    for (int port = 0; port < 2; port++) fw_link_handle_timer(&j->links[port], now);
    pump(j, now);
    run_control(j, now);
    if (j->telemetry_at != FW_NO_DEADLINE && now >= j->telemetry_at) send_state(j, now);
}
