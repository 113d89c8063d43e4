/* The message handlers and their dispatch table: a port of joints/handlers.py. */
#include <string.h>

#include "joint_priv.h"

static const unsigned goal_register[4] = {0, FW_REG_GOAL_POSITION, FW_REG_GOAL_VELOCITY, FW_REG_GOAL_CURRENT};

void fw_handlers_error(fw_joint_t *j, const fw_packet_t *request, uint8_t kind, uint32_t detail, int64_t now,
                       bool force) {
    if (request->dst == FW_ADDR_BROADCAST && !force) return;
    j->counters.errors_sent++;
    uint8_t msg[4] = {request->type, kind, 0, 0};
    fw_put_u16(&msg[2], detail & 0xFFFFu);
    fw_packet_t p;
    p.src = fw_joint_address(j);
    p.dst = request->dst != FW_ADDR_BROADCAST ? request->src : FW_ADDR_HOST;
    p.type = FW_MSG_ERROR;
    p.msg_id = request->msg_id;
    p.ttl = FW_DEFAULT_TTL;
    p.len = sizeof msg;
    memcpy(p.payload, msg, sizeof msg);
    fw_node_send(j, &p, now);
}

static bool put(fw_joint_t *j, uint8_t kind, int32_t a, int32_t b) {
    ctl_command_t cmd = {kind, a, b};
    return ctl_command(&j->control, &cmd);
}

/* apply_write: check a register write completely, then apply it and its side effects; 0 or an ErrorKind.
   has_msg_id false: the write is not a host request that an ESTOP could have overtaken (TORQUE). */
static uint8_t apply_write(fw_joint_t *j, uint32_t address, const uint8_t *data, int32_t len, int64_t now,
                           bool has_msg_id, uint16_t msg_id) {
    ctl_core_t *c = &j->control;
    bool torque_on = ctl_torque(c) || fw_regs_get(&j->regs, FW_REG_TORQUE_ENABLE) != 0;
    fw_reg_values_t v;
    uint8_t err = fw_regs_check_write(&j->regs, address, data, len, torque_on, &v);
    if (!err) err = fw_rates_check_write(j, &v);
    if (err) return err;
    int64_t clear = fw_values_get(&v, FW_REG_CLEAR_FLAGS, 0);
    bool release = fw_values_has(&v, FW_REG_ESTOP) && v.value[FW_REG_ESTOP] == 0;
    bool releases = release || (clear & FW_STATUS_ESTOPPED);
    if (releases && has_msg_id && fw_node_overtaken_by_estop(j, msg_id)) {
        j->counters.stale_refused++;
        return FW_ERR_BUSY;
    }
    uint8_t clearing = (uint8_t)(clear | (release ? FW_STATUS_ESTOPPED : 0));
    bool blocked = (ctl_flags(c) & FW_BLOCKING_FLAGS & ~(clearing | fw_node_pending_clears(j))) != 0;
    ctl_command_t cmds[6];
    unsigned n = 0;
    if (fw_values_has(&v, FW_REG_TORQUE_ENABLE)) {
        if (v.value[FW_REG_TORQUE_ENABLE] && blocked) return FW_ERR_BUSY;
        cmds[n++] = (ctl_command_t){FW_CMD_TORQUE, (int32_t)v.value[FW_REG_TORQUE_ENABLE], 0};
    }
    if (fw_values_has(&v, FW_REG_GOAL_MODE) || fw_values_has(&v, FW_REG_GOAL_POSITION) ||
        fw_values_has(&v, FW_REG_GOAL_VELOCITY) || fw_values_has(&v, FW_REG_GOAL_CURRENT)) {
        if (blocked) return FW_ERR_BUSY;
        int64_t mode = fw_values_get(&v, FW_REG_GOAL_MODE, fw_regs_get(&j->regs, FW_REG_GOAL_MODE));
        unsigned name = goal_register[mode];
        if (fw_values_has(&v, FW_REG_GOAL_MODE) || fw_values_has(&v, name)) {
            int64_t value = fw_values_get(&v, name, fw_regs_get(&j->regs, name));
            cmds[n++] = (ctl_command_t){FW_CMD_SET_GOAL, (int32_t)mode, (int32_t)value};
        }
    }
    if (release) cmds[n++] = (ctl_command_t){FW_CMD_RELEASE_ESTOP, 0, 0};
    if (fw_values_has(&v, FW_REG_WATCHDOG_PERIOD)) {
        cmds[n++] = (ctl_command_t){FW_CMD_WATCHDOG, (int32_t)v.value[FW_REG_WATCHDOG_PERIOD], 0};
    }
    if (clear) cmds[n++] = (ctl_command_t){FW_CMD_CLEAR, (int32_t)clear, 0};
    if (address < FW_REG_PERSISTENT_END) cmds[n++] = (ctl_command_t){FW_CMD_RELOAD, 0, 0};
    if (ctl_commands_free(c) < n) {
        j->counters.commands_refused++;
        return FW_ERR_BUSY;
    }
    fw_regs_write(&j->regs, address, data, len, torque_on);
    for (unsigned k = 0; k < n; k++) ctl_command(c, &cmds[k]);
    if (clearing) fw_node_note_clear(j, clearing);
    if (fw_values_has(&v, FW_REG_ESTOP) && v.value[FW_REG_ESTOP] == 1) ctl_estop(c, now);
    if (fw_values_has(&v, FW_REG_CLEAR_FLAGS)) fw_regs_set(&j->regs, FW_REG_CLEAR_FLAGS, 0);
    if (fw_values_has(&v, FW_REG_STATE_PERIOD)) fw_node_set_telemetry(j, v.value[FW_REG_STATE_PERIOD], now);
    fw_rates_apply_write(j, &v, now);
    return 0;
}

/* --------------------------------------------------------------------------------------------- handlers */
static void on_ping(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now) {
    (void)port;
    uint8_t r[9];
    fw_put_u16(&r[0], (uint32_t)fw_regs_get(&j->regs, FW_REG_MODEL_NUMBER));
    r[2] = (uint8_t)fw_regs_get(&j->regs, FW_REG_FIRMWARE_MAJOR);
    r[3] = (uint8_t)fw_regs_get(&j->regs, FW_REG_FIRMWARE_MINOR);
    fw_put_u32(&r[4], (uint32_t)fw_regs_get(&j->regs, FW_REG_SERIAL_NUMBER));
    r[8] = fw_joint_address(j);
    fw_node_reply(j, p, FW_MSG_PING_REPLY, r, sizeof r, now);
}

static void on_enumerate(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now) {
    (void)port;
    unsigned address = p->payload[0] + 1u;
    if (address > FW_ADDR_LAST_JOINT) {
        fw_handlers_error(j, p, FW_ERR_LIMIT, address, now, true);
        return;
    }
    fw_node_set_address(j, (uint8_t)address);
    if (p->len + 6u > FW_MAX_PAYLOAD) {
        fw_handlers_error(j, p, FW_ERR_LENGTH, address, now, true);
        return;
    }
    fw_packet_t *out = &j->scratch;
    *out = *p;
    out->payload[0] = (uint8_t)address;
    fw_put_u16(&out->payload[p->len], j->config.model);
    fw_put_u32(&out->payload[p->len + 2], j->config.serial);
    out->len = (uint16_t)(p->len + 6);
    fw_packet_t held = *out;
    fw_node_hold_enumerate(j, &held, now);
}

void fw_handlers_turn_around(fw_joint_t *j, const fw_packet_t *p, int64_t now) {
    fw_packet_t reply = *p;
    if (p->type == FW_MSG_SYNC_READ) {
        reply.type = FW_MSG_SYNC_READ_REPLY;
    } else {
        fw_node_set_is_last(j, 1);
        reply.type = FW_MSG_ENUMERATE_REPLY;
    }
    reply.src = fw_joint_address(j);
    reply.dst = FW_ADDR_HOST;
    reply.ttl = FW_DEFAULT_TTL;
    fw_node_send(j, &reply, now);
}

static void on_read(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now) {
    (void)port;
    uint16_t reg = fw_u16(p->payload);
    uint8_t length = p->payload[2];
    uint8_t r[2 + 255];
    uint8_t err = fw_regs_read(&j->regs, reg, length, &r[2]);
    if (err) {
        fw_handlers_error(j, p, err, reg, now, false);
    } else if (p->dst != FW_ADDR_BROADCAST) {
        fw_put_u16(r, reg);
        fw_node_reply(j, p, FW_MSG_READ_REPLY, r, (uint16_t)(2 + length), now);
    }
}

static void on_write(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now) {
    (void)port;
    uint16_t reg = fw_u16(p->payload);
    int32_t len = p->len - 2;
    uint8_t err = apply_write(j, reg, &p->payload[2], len, now, true, p->msg_id);
    if (err) {
        fw_handlers_error(j, p, err, reg, now, false);
    } else if (p->dst != FW_ADDR_BROADCAST) {
        uint8_t r[3];
        fw_put_u16(r, reg);
        r[2] = (uint8_t)len;
        fw_node_reply(j, p, FW_MSG_WRITE_REPLY, r, sizeof r, now);
    }
}

static void on_sync_write(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now) {
    uint16_t reg = fw_u16(p->payload);
    unsigned slice_len = p->payload[2], first = p->payload[3];
    const uint8_t *data = &p->payload[4];
    unsigned data_len = p->len - 4u, count = data_len / slice_len;
    unsigned addr = fw_joint_address(j);
    const uint8_t *mine = NULL;
    if (addr != FW_ADDR_UNASSIGNED) {
        int i = (int)addr - (int)first;
        if (i >= 0 && (unsigned)i < count) mine = &data[(unsigned)i * slice_len];
    }
    bool has_rest = true;
    fw_packet_t *rest = &j->scratch;
    *rest = *p;
    if (addr != FW_ADDR_UNASSIGNED && first <= addr) {
        unsigned skip = (addr - first + 1) * slice_len;
        if (skip >= data_len) {
            has_rest = false;
        } else {
            rest->payload[3] = (uint8_t)(addr + 1);
            memmove(&rest->payload[4], &data[skip], data_len - skip);
            rest->len = (uint16_t)(4 + data_len - skip);
        }
    }
    if (has_rest && port == FW_PORT_UP) {
        fw_packet_t out = *rest;
        fw_node_pass_down(j, &out, now, false);
    }
    if (mine != NULL) {
        uint8_t err = apply_write(j, reg, mine, (int32_t)slice_len, now, true, p->msg_id);
        if (err) fw_handlers_error(j, p, err, reg, now, true);
    }
}

static void on_sync_read(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now) {
    (void)port;
    uint16_t reg = fw_u16(p->payload);
    uint8_t length = p->payload[2];
    uint8_t data[255];
    uint8_t err = fw_regs_read(&j->regs, reg, length, data);
    if (err) {
        fw_handlers_error(j, p, err, reg, now, true);
        memset(data, 0, length);
    }
    fw_packet_t grown = *p;
    bool same = false;
    if (p->len + 2u + length > FW_MAX_PAYLOAD) {
        fw_handlers_error(j, p, FW_ERR_LENGTH, reg, now, true);
        same = true;
    } else {
        grown.payload[p->len] = fw_joint_address(j);
        grown.payload[p->len + 1] = ctl_state(&j->control)->status;
        memcpy(&grown.payload[p->len + 2], data, length);
        grown.len = (uint16_t)(p->len + 2 + length);
    }
    if (same || j->is_last == 1 || !fw_node_pass_down(j, &grown, now, false)) fw_handlers_turn_around(j, &grown, now);
}

static void on_set_goal(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now) {
    (void)port;
    uint8_t mode = p->payload[0];
    int32_t value = fw_i32(&p->payload[1]);
    if (mode < FW_GOAL_POSITION || mode > FW_GOAL_CURRENT) {
        fw_handlers_error(j, p, FW_ERR_LIMIT, mode, now, false);
        return;
    }
    unsigned name = goal_register[mode];
    const fw_reg_info_t *r = &fw_reg_table[name];
    if (value < fw_reg_minimum(r) || value > fw_reg_maximum(r)) {
        fw_handlers_error(j, p, FW_ERR_LIMIT, r->address, now, false);
        return;
    }
    if ((ctl_flags(&j->control) & FW_BLOCKING_FLAGS) || ctl_commands_free(&j->control) == 0) {
        fw_handlers_error(j, p, FW_ERR_BUSY, r->address, now, false);
        return;
    }
    fw_regs_set(&j->regs, name, value);
    fw_regs_set(&j->regs, FW_REG_GOAL_MODE, mode);
    put(j, FW_CMD_SET_GOAL, mode, value);
}

static void on_torque(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now) {
    (void)port;
    uint8_t err = apply_write(j, FW_REGADDR_TORQUE_ENABLE, p->payload, 1, now, false, 0);
    if (err) fw_handlers_error(j, p, err, FW_REGADDR_TORQUE_ENABLE, now, false);
}

static void on_estop(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now) {
    ctl_estop(&j->control, now);
    fw_regs_set(&j->regs, FW_REG_ESTOP, 1);
    fw_node_took_estop(j, p->msg_id, now);
    if (p->dst == FW_ADDR_BROADCAST && port == FW_PORT_UP) fw_node_pass_down(j, p, now, true);
}

static void on_heartbeat(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now) {
    (void)port;
    if (!put(j, FW_CMD_HEARTBEAT, 0, 0)) {
        j->counters.commands_refused++;
        fw_handlers_error(j, p, FW_ERR_BUSY, 0, now, true);
    }
}

static void on_reboot(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now) {
    (void)port;
    if (fw_node_overtaken_by_estop(j, p->msg_id)) {
        j->counters.stale_refused++;
        fw_handlers_error(j, p, FW_ERR_BUSY, 0, now, false);
        return;
    }
    fw_joint_schedule_reboot(j, now);
}

/* The payload checks of bus/messages.py's unpack (DecodeError LENGTH), by type. */
static bool payload_ok(const fw_packet_t *p) {
    unsigned n = p->len;
    switch (p->type) {
    case FW_MSG_PING:
    case FW_MSG_REBOOT:
        return n == 0;
    case FW_MSG_ENUMERATE:
        return n >= 1 && n == 1u + p->payload[0] * 6u;
    case FW_MSG_READ:
        return n == 3;
    case FW_MSG_WRITE:
        return n >= 2;
    case FW_MSG_SYNC_WRITE:
        return n >= 4 && p->payload[2] != 0 && (n - 4) % p->payload[2] == 0;
    case FW_MSG_SYNC_READ:
        return n >= 3 && (n - 3) % (2u + p->payload[2]) == 0;
    case FW_MSG_SET_GOAL:
        return n == 5;
    case FW_MSG_TORQUE:
    case FW_MSG_ESTOP:
        return n == 1;
    case FW_MSG_HEARTBEAT:
        return n == 4;
    case FW_MSG_CYCLE:
        return fw_cycle_head_ok(p);
    case FW_MSG_CYCLE_REPLY:
        return fw_reply_head_ok(p);
    default:
        return false;
    }
}

typedef void (*handler_fn)(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now);

static handler_fn handler_for(uint8_t type) {
    switch (type) {
    case FW_MSG_PING: return on_ping;
    case FW_MSG_ENUMERATE: return on_enumerate;
    case FW_MSG_READ: return on_read;
    case FW_MSG_WRITE: return on_write;
    case FW_MSG_SYNC_WRITE: return on_sync_write;
    case FW_MSG_SYNC_READ: return on_sync_read;
    case FW_MSG_SET_GOAL: return on_set_goal;
    case FW_MSG_TORQUE: return on_torque;
    case FW_MSG_ESTOP: return on_estop;
    case FW_MSG_HEARTBEAT: return on_heartbeat;
    case FW_MSG_REBOOT: return on_reboot;
    case FW_MSG_CYCLE: return fw_cyclic_on_cycle;
    case FW_MSG_CYCLE_REPLY: return fw_cyclic_on_cycle_reply;
    default: return NULL;
    }
}

void fw_handlers_dispatch(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now) {
    handler_fn h = handler_for(p->type);
    if (h == NULL) {
        j->counters.ignored++;
        return;
    }
    if (!payload_ok(p)) {
        fw_handlers_error(j, p, FW_ERR_LENGTH, p->len, now, false);
        return;
    }
    h(j, port, p, now);
}

void fw_handlers_delivery_failed(fw_joint_t *j, int role, const fw_packet_t *p, uint8_t reason, int64_t now) {
    if (role != FW_PORT_DOWN) return;
    if (p->type == FW_MSG_ENUMERATE && reason == FW_UNDELIV_LINK_RESET && fw_node_down_usable(j)) {
        if (!j->has_held_enumerate) fw_node_hold_enumerate(j, p, now);
    } else if (p->type == FW_MSG_ENUMERATE || p->type == FW_MSG_SYNC_READ) {
        fw_handlers_turn_around(j, p, now);
    } else if (p->type == FW_MSG_CYCLE) {
        fw_cyclic_start_reply(j, p, now);
    }
}
