/* sil_joint.c - the simulator's flat C ABI to one joint (fw_joint.h), for ctypes (hil/firmware/cjoint.py).
 *
 * Theory of operation: the binding owns the memory (a buffer of sil_joint_size() bytes); nothing here allocates.
 * Entry points pass plain integers and pointers only. The nonce HAL is a callback so that the binding can give
 * the C joint the Python model's seeded nonce stream (random.Random(link seed)); the motor HAL comes from
 * sil_board (C physics or callbacks into a Python Actuator). Counters are copied out as arrays of uint32 in the
 * field order of the Python dataclasses (NodeCounters, LinkCounters, RouterCounters).
 */
#include <stddef.h>
#include <string.h>

#include "fw_joint.h"

typedef uint8_t (*sil_nonce_fn)(void *ctx, uint8_t port, uint32_t boots);

size_t sil_joint_size(void) { return sizeof(fw_joint_t); }
size_t sil_joint_config_size(void) { return sizeof(fw_joint_config_t); }

/* Fill a configuration; 0 when every value fits the firmware's fixed limits, -1 otherwise. */
int sil_joint_config(fw_joint_config_t *c, uint32_t model, uint32_t serial, int64_t period_ns, int64_t boot_ns,
                     int64_t forward_latency_ns, int64_t max_baud, int64_t up_baud, int64_t down_baud, int64_t baud,
                     int64_t turnaround_ns, int32_t queue_limit, int32_t urgent_limit, int32_t max_retries,
                     int64_t backoff_cap_ns, int64_t reverse_bytes, int64_t quiet_ns) {
    fw_joint_config_default(c, (uint16_t)model, serial);
    c->period_ns = period_ns;
    c->boot_ns = boot_ns;
    c->forward_latency_ns = forward_latency_ns;
    c->max_baud = max_baud;
    c->port_bauds[0] = up_baud;
    c->port_bauds[1] = down_baud;
    c->link.baud = baud;
    c->link.turnaround_ns = turnaround_ns;
    c->link.queue_limit = queue_limit;
    c->link.urgent_limit = urgent_limit;
    c->link.max_retries = max_retries;
    c->link.backoff_cap_ns = backoff_cap_ns;
    c->link.reverse_bytes = reverse_bytes;
    c->link.quiet_ns = quiet_ns;
    return (fw_link_config_ok(&c->link) && model <= 0xFFFF && period_ns > 0) ? 0 : -1;
}

void sil_joint_create(fw_joint_t *j, const fw_joint_config_t *c, sil_nonce_fn nonce, void *nonce_ctx,
                      const fw_hal_motor_t *motor, int64_t now) {
    fw_hal_t hal = {nonce_ctx, nonce};
    fw_joint_init(j, c, &hal, motor, now);
}

/* The node-driving contract; a deadline of INT64_MAX means none. */
void sil_joint_rx(fw_joint_t *j, uint32_t port, const uint8_t *data, uint32_t n, int64_t now) {
    fw_joint_rx_block(j, port, data, n, now);
}
void sil_joint_rx_bytewise(fw_joint_t *j, uint32_t port, const uint8_t *data, uint32_t n, int64_t now) {
    for (uint32_t k = 0; k < n; k++) fw_joint_rx_byte(j, port, data[k], now);
}
uint32_t sil_joint_tx(fw_joint_t *j, uint32_t port, int64_t now, uint8_t *out, uint32_t cap) {
    return fw_joint_tx(j, port, now, out, cap);
}
int64_t sil_joint_next_deadline(const fw_joint_t *j) { return fw_joint_next_deadline(j); }
void sil_joint_handle_timer(fw_joint_t *j, int64_t now) { fw_joint_handle_timer(j, now); }
void sil_joint_reboot(fw_joint_t *j, int64_t now) { fw_joint_reboot(j, now); }
void sil_joint_schedule_reboot(fw_joint_t *j, int64_t now) { fw_joint_schedule_reboot(j, now); }

/* What the simulator reads. */
uint8_t *sil_joint_regs(fw_joint_t *j) { return j->regs.mem; }
int64_t *sil_joint_port_rates(fw_joint_t *j) { return j->port_rates; }
uint32_t sil_joint_boots(const fw_joint_t *j) { return j->boots; }
int32_t sil_joint_booting(const fw_joint_t *j) { return fw_joint_booting(j); }
int32_t sil_joint_is_last(const fw_joint_t *j) { return j->is_last; }
void sil_joint_set_address(fw_joint_t *j, uint32_t address) {
    fw_regs_set(&j->regs, FW_REG_BUS_ADDRESS, address);
    j->router.address = (uint8_t)address;
}
int32_t sil_joint_down_answered(const fw_joint_t *j) { return j->down_answered; }
int32_t sil_joint_estop_msg_id(const fw_joint_t *j) { return j->estop_msg_id; }
int32_t sil_joint_held_enumerate(const fw_joint_t *j) { return j->has_held_enumerate; }

static uint32_t copy(uint32_t *out, uint32_t cap, const void *src, size_t size) {
    uint32_t n = (uint32_t)(size / sizeof(uint32_t));
    if (n > cap) n = cap;
    memcpy(out, src, n * sizeof(uint32_t));
    return n;
}
uint32_t sil_joint_node_counters(const fw_joint_t *j, uint32_t *out, uint32_t cap) {
    return copy(out, cap, &j->counters, sizeof j->counters);
}
uint32_t sil_joint_link_counters(const fw_joint_t *j, uint32_t port, uint32_t *out, uint32_t cap) {
    return copy(out, cap, &j->links[port & 1].counters, sizeof j->links[0].counters);
}
uint32_t sil_joint_router_counters(const fw_joint_t *j, uint32_t *out, uint32_t cap) {
    return copy(out, cap, &j->router.counters, sizeof j->router.counters); /* reserved[2] last, as int32 */
}
/* Deframer counters: frames, bytes, then errors by LineErrorKind 1..8. */
uint32_t sil_joint_deframer_counters(const fw_joint_t *j, uint32_t port, uint32_t *out, uint32_t cap) {
    const fw_deframer_counters_t *d = &j->links[port & 1].deframer.counters;
    uint32_t all[10] = {d->frames, d->bytes};
    for (int k = 1; k <= 8; k++) all[1 + k] = d->errors[k];
    return copy(out, cap, all, sizeof all);
}
/* One link: state, queued, urgent queued, in flight, queue space, buffered deframer bytes, overflows. */
void sil_joint_link_info(const fw_joint_t *j, uint32_t port, int64_t *out) {
    const fw_link_t *l = &j->links[port & 1];
    out[0] = l->state;
    out[1] = l->q_len;
    out[2] = l->u_len;
    out[3] = l->has_inflight;
    out[4] = fw_link_queue_space(l);
    out[5] = l->deframer.len;
    out[6] = l->ev_overflow + l->out_overflow + l->slot_refused;
    out[7] = fw_link_next_deadline(l);
}
uint32_t sil_joint_backlog(const fw_joint_t *j) { return j->router.b_len; }

/* The control core as the comm core sees it. */
ctl_core_t *sil_joint_control(fw_joint_t *j) { return &j->control; }
/* position, velocity, current, temperature, voltage, status, flags, torque, sampled_at, commands len, posted,
   taken, events pending, goals latched, goal, mode */
void sil_joint_control_info(const fw_joint_t *j, int64_t *out) {
    const ctl_core_t *c = &j->control;
    const ctl_state_t *s = ctl_state(c);
    out[0] = s->position;
    out[1] = s->velocity;
    out[2] = s->current;
    out[3] = s->temperature;
    out[4] = s->voltage;
    out[5] = s->status;
    out[6] = ctl_flags(c);
    out[7] = ctl_torque(c);
    out[8] = ctl_sampled_at(c);
    out[9] = ctl_commands_len(c);
    out[10] = ctl_commands_posted(c);
    out[11] = ctl_commands_taken(c);
    out[12] = ctl_events_pending(c);
    out[13] = ctl_goals_latched(c);
    out[14] = c->goal;
    out[15] = c->mode;
}
void sil_joint_set_latch_hook(fw_joint_t *j, ctl_latch_hook_fn fn, void *ctx) { ctl_set_latch_hook(&j->control, fn, ctx); }
void sil_joint_set_tick_hook(fw_joint_t *j, ctl_tick_hook_fn fn, void *ctx) { ctl_set_tick_hook(&j->control, fn, ctx); }
