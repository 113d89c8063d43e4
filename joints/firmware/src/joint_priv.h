/* What the joint's modules (joint.c, handlers.c, cyclic.c, rates.c) share; not part of the public API. */
#ifndef FW_JOINT_PRIV_H
#define FW_JOINT_PRIV_H

#include "fw_joint.h"

/* little-endian field access */
static inline uint16_t fw_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline int32_t fw_i32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}
static inline void fw_put_u16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void fw_put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* node (joint.c) */
bool fw_node_send(fw_joint_t *j, const fw_packet_t *p, int64_t now);
bool fw_node_send_to_host(fw_joint_t *j, uint8_t type, const uint8_t *payload, uint16_t len, int64_t now);
bool fw_node_reply(fw_joint_t *j, const fw_packet_t *request, uint8_t type, const uint8_t *payload, uint16_t len,
                   int64_t now);
bool fw_node_pass_down(fw_joint_t *j, const fw_packet_t *p, int64_t now, bool urgent);
void fw_node_set_address(fw_joint_t *j, uint8_t address);
void fw_node_set_is_last(fw_joint_t *j, int8_t last);
bool fw_node_down_usable(const fw_joint_t *j);
void fw_node_hold_enumerate(fw_joint_t *j, const fw_packet_t *p, int64_t now);
void fw_node_note_clear(fw_joint_t *j, uint8_t flags);
uint8_t fw_node_pending_clears(const fw_joint_t *j);
void fw_node_took_estop(fw_joint_t *j, uint16_t msg_id, int64_t now);
bool fw_node_overtaken_by_estop(const fw_joint_t *j, uint16_t msg_id);
void fw_node_set_telemetry(fw_joint_t *j, int64_t period_ms, int64_t now);
/* The router's local_accept: is there room for what a packet for this joint will need? */
bool fw_node_local_accept(void *ctx, const fw_packet_t *p);

/* handlers (handlers.c) */
void fw_handlers_dispatch(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now);
void fw_handlers_delivery_failed(fw_joint_t *j, int role, const fw_packet_t *p, uint8_t reason, int64_t now);
void fw_handlers_turn_around(fw_joint_t *j, const fw_packet_t *p, int64_t now);
void fw_handlers_error(fw_joint_t *j, const fw_packet_t *request, uint8_t kind, uint32_t detail, int64_t now,
                       bool force);

/* cyclic exchange (cyclic.c) */
bool fw_cycle_head_ok(const fw_packet_t *p);
bool fw_reply_head_ok(const fw_packet_t *p);
void fw_cyclic_on_cycle(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now);
void fw_cyclic_on_cycle_reply(fw_joint_t *j, int port, const fw_packet_t *p, int64_t now);
void fw_cyclic_start_reply(fw_joint_t *j, const fw_packet_t *p, int64_t now);
void fw_cyclic_reset(fw_joint_t *j);

/* line rates (rates.c) */
void fw_rates_init(fw_joint_t *j);
int64_t fw_rates_deadline(const fw_joint_t *j);
bool fw_rates_handle_timer(fw_joint_t *j, int64_t now);
uint8_t fw_rates_check_write(const fw_joint_t *j, const fw_reg_values_t *values);
void fw_rates_apply_write(fw_joint_t *j, const fw_reg_values_t *values, int64_t now);
void fw_rates_retime(fw_joint_t *j);

#endif
