/* The joint's part in the cyclic exchange: a port of joints/cyclic.py (and the payload edits of bus/cycle.py). */
#include <string.h>

#include "joint_priv.h"

static const unsigned goal_register[4] = {0, FW_REG_GOAL_POSITION, FW_REG_GOAL_VELOCITY, FW_REG_GOAL_CURRENT};

bool fw_cycle_head_ok(const fw_packet_t *p) {
    if (p->len < FW_CYCLE_HEADER_SIZE) return false;
    unsigned body = p->len - FW_CYCLE_HEADER_SIZE;
    if (body % FW_CYCLE_GOAL_SIZE) return false;
    return !(p->payload[3] == FW_NO_GOALS && body);
}

bool fw_reply_head_ok(const fw_packet_t *p) {
    if (p->len < FW_REPLY_HEADER_SIZE) return false;
    return (p->len - FW_REPLY_HEADER_SIZE) % (FW_RECORD_HEAD_SIZE + p->payload[2]) == 0;
}

void fw_cyclic_reset(fw_joint_t *j) {
    j->result_head = 0;
    j->result_len = 0;
}

static void remember(fw_joint_t *j, uint16_t msg_id, uint8_t outcome) {
    for (unsigned k = 0; k < j->result_len; k++) {
        unsigned at = (j->result_head + k) % FW_RESULTS_KEPT;
        if (j->result_ids[at] == msg_id) { /* an OrderedDict update keeps the entry's place */
            j->result_values[at] = outcome;
            return;
        }
    }
    if (j->result_len == FW_RESULTS_KEPT) {
        j->result_head = (uint8_t)((j->result_head + 1) % FW_RESULTS_KEPT);
        j->result_len--;
    }
    unsigned at = (j->result_head + j->result_len) % FW_RESULTS_KEPT;
    j->result_ids[at] = msg_id;
    j->result_values[at] = outcome;
    j->result_len++;
}

static uint8_t recalled(const fw_joint_t *j, uint16_t msg_id) {
    for (unsigned k = 0; k < j->result_len; k++) {
        unsigned at = (j->result_head + k) % FW_RESULTS_KEPT;
        if (j->result_ids[at] == msg_id) return j->result_values[at];
    }
    return FW_GOAL_NONE;
}

static int64_t data_wire_size(int64_t payload_len) {
    int64_t raw = FW_DATA_OVERHEAD + payload_len;
    return raw + (raw + 253) / 254 + 1;
}

static int64_t lead_ns(unsigned slices_below, int64_t baud, int64_t forward_latency_ns) {
    int64_t total = 0;
    for (unsigned k = 1; k <= slices_below; k++) {
        total += fw_wire_time_ns(data_wire_size(FW_CYCLE_HEADER_SIZE + FW_CYCLE_GOAL_SIZE * (int64_t)k), baud) +
                 forward_latency_ns;
    }
    return total;
}

static uint8_t check_goal(const fw_joint_t *j, uint8_t mode, int32_t value) {
    if (mode < FW_GOAL_POSITION || mode > FW_GOAL_CURRENT) return FW_ERR_LIMIT;
    const fw_reg_info_t *r = &fw_reg_table[goal_register[mode]];
    if (value < fw_reg_minimum(r) || value > fw_reg_maximum(r)) return FW_ERR_LIMIT;
    if (ctl_flags(&j->control) & FW_BLOCKING_FLAGS) return FW_ERR_BUSY;
    return FW_GOAL_TAKEN;
}

/* Append this joint's record for cycle `msg_id` to `payload` (length `*len`); false if it no longer fits. */
static bool append_record(fw_joint_t *j, uint8_t *payload, uint16_t *len, uint16_t reg, uint8_t length,
                          uint16_t msg_id, int64_t now) {
    if (*len + FW_RECORD_HEAD_SIZE + length > FW_MAX_PAYLOAD) return false;
    uint8_t *rec = &payload[*len];
    uint8_t read = length ? fw_regs_read(&j->regs, reg, length, &rec[FW_RECORD_HEAD_SIZE]) : FW_READ_OK;
    if (read != FW_READ_OK) memset(&rec[FW_RECORD_HEAD_SIZE], 0, length);
    uint8_t goal = recalled(j, msg_id);
    const ctl_core_t *c = &j->control;
    int64_t age = now - ctl_sampled_at(c);
    age = age > 0 ? age / FW_NS_PER_US : 0;
    if (age > FW_AGE_MAX_US) age = FW_AGE_MAX_US;
    rec[0] = fw_joint_address(j);
    rec[1] = (uint8_t)(ctl_state(c)->status | (ctl_flags(c) & FW_BLOCKING_FLAGS));
    rec[2] = (uint8_t)((read & 0xF) << 4 | (goal & 0xF));
    fw_put_u16(&rec[3], (uint32_t)age);
    *len = (uint16_t)(*len + FW_RECORD_HEAD_SIZE + length);
    return true;
}

static void start_reply(fw_joint_t *j, const fw_packet_t *p, uint16_t reg, uint8_t length, int64_t now) {
    fw_packet_t out;
    out.payload[0] = (uint8_t)reg;
    out.payload[1] = (uint8_t)(reg >> 8);
    out.payload[2] = length;
    out.len = FW_REPLY_HEADER_SIZE;
    if (!append_record(j, out.payload, &out.len, reg, length, p->msg_id, now)) {
        fw_router_report(&j->router, p, FW_PORT_DOWN, FW_UNDELIV_NO_ROUTE, now);
        return;
    }
    j->counters.cycle_replies++;
    out.src = fw_joint_address(j);
    out.dst = FW_ADDR_HOST;
    out.type = FW_MSG_CYCLE_REPLY;
    out.msg_id = p->msg_id;
    out.ttl = FW_DEFAULT_TTL;
    fw_node_send(j, &out, now);
}

void fw_cyclic_start_reply(fw_joint_t *j, const fw_packet_t *p, int64_t now) {
    start_reply(j, p, fw_u16(p->payload), p->payload[2], now);
}

void fw_cyclic_on_cycle(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now) {
    if (port != FW_PORT_UP) return;
    if (p->dst != FW_ADDR_BROADCAST) {
        j->counters.errors_sent++;
        uint8_t err[4] = {FW_MSG_CYCLE, FW_ERR_INSTRUCTION, 0, 0};
        fw_node_reply(j, p, FW_MSG_ERROR, err, sizeof err, now);
        return;
    }
    uint16_t reg = fw_u16(p->payload);
    uint8_t length = p->payload[2], mode = p->payload[3], first = p->payload[4];
    unsigned slices = (p->len - FW_CYCLE_HEADER_SIZE) / FW_CYCLE_GOAL_SIZE;
    unsigned addr = fw_joint_address(j), kept = slices;
    fw_packet_t rest = *p;
    if (addr != FW_ADDR_UNASSIGNED) {
        int skip_i = (int)addr - (int)first + 1;
        unsigned skip = skip_i > 0 ? (unsigned)skip_i : 0;
        if (skip > slices) skip = slices;
        rest.payload[4] = (uint8_t)(first > addr + 1 ? first : addr + 1);
        unsigned from = FW_CYCLE_HEADER_SIZE + FW_CYCLE_GOAL_SIZE * skip;
        memcpy(&rest.payload[FW_CYCLE_HEADER_SIZE], &p->payload[from], p->len - from);
        rest.len = (uint16_t)(FW_CYCLE_HEADER_SIZE + p->len - from);
        kept = slices - skip;
    }
    bool forwarded = fw_node_pass_down(j, &rest, now, false);
    uint8_t outcome = FW_GOAL_NONE;
    if (mode != FW_NO_GOALS && addr != FW_ADDR_UNASSIGNED) {
        int i = (int)addr - (int)first;
        if (i >= 0 && (unsigned)i < slices) {
            int32_t goal = fw_i32(&p->payload[FW_CYCLE_HEADER_SIZE + FW_CYCLE_GOAL_SIZE * (unsigned)i]);
            outcome = check_goal(j, mode, goal);
            if (outcome == FW_GOAL_TAKEN) {
                int64_t lead = forwarded ? lead_ns(kept, j->port_rates[FW_PORT_DOWN], j->config.forward_latency_ns) : 0;
                fw_regs_set(&j->regs, goal_register[mode], goal);
                fw_regs_set(&j->regs, FW_REG_GOAL_MODE, mode);
                ctl_post_goal(&j->control, mode, goal, now + lead, p->msg_id);
                j->counters.cycle_goals++;
            } else {
                j->counters.cycle_refused++;
            }
        }
    }
    remember(j, p->msg_id, outcome);
    if (!forwarded) start_reply(j, p, reg, length, now);
}

void fw_cyclic_on_cycle_reply(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now) {
    if (port != FW_PORT_DOWN) return;
    if (p->ttl == 0) {
        fw_router_report(&j->router, p, FW_PORT_UP, FW_UNDELIV_TTL, now);
        return;
    }
    fw_packet_t out = *p;
    if (!append_record(j, out.payload, &out.len, fw_u16(p->payload), p->payload[2], p->msg_id, now)) {
        j->counters.cycle_overflow++;
        out.len = p->len;
    }
    out.src = fw_joint_address(j);
    out.ttl = (uint8_t)(p->ttl - 1);
    fw_node_send(j, &out, now);
}
