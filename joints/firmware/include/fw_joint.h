/* The joint: comm core (two UART ports, hop links, router, handlers, registers, cyclic exchange, line-rate
 * switch) around the control core (fw_control.h). A port of joints/node.py JointNode with joints/handlers.py,
 * joints/cyclic.py and joints/rates.py; the Python docstrings there are the manual.
 *
 * Theory of operation: everything a joint keeps is in fw_joint_t (no heap, no globals): a simulator hosts many,
 * a board one static instance. The entry points are sans-I/O and take the time `now` in integer ns:
 *
 *   fw_joint_rx_byte(j, port, byte, now)     one received byte: what the UART receive interrupt calls
 *   fw_joint_rx_block(j, port, data, n, now) a received block (DMA): the same as its bytes one call each (each
 *                                            frame is routed and handled at its delimiter, as JointNode does)
 *   fw_joint_tx(j, port, now, out, cap)      bytes to put on the line now (the transmit interrupt / DMA)
 *   fw_joint_next_deadline(j)                when fw_joint_handle_timer must run next (the timer compare)
 *   fw_joint_handle_timer(j, now)
 *
 * The board supplies the comm HAL (fw_hal.h: nonce source) and the motor HAL (fw_hal_motor.h), and calls
 * fw_joint_init once; fw_joint_reboot models a power cycle (the MCU is silent for boot_ns).
 */
#ifndef FW_JOINT_H
#define FW_JOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "fw_control.h"
#include "fw_hal.h"
#include "fw_hal_motor.h"
#include "fw_link.h"
#include "fw_regs.h"
#include "fw_router.h"

typedef struct fw_node_counters {
    uint32_t handled, forwarded, errors_sent, ignored, delivery_failures, tx_refused, commands_refused,
        stale_refused, rx_while_booting, reboots, cycle_goals, cycle_refused, cycle_replies, cycle_overflow;
} fw_node_counters_t;

typedef struct fw_joint_config {
    uint16_t model;
    uint32_t serial;
    int64_t period_ns;
    int64_t boot_ns;
    int64_t forward_latency_ns;
    int64_t max_baud;
    int64_t port_bauds[2];
    fw_link_config_t link;
} fw_joint_config_t;

/* The small fields first, the buffers last: on Thumb a field near the start is one load away. */
typedef struct fw_joint {
    uint8_t clearing_flags;
    int8_t is_last; /* -1 unknown, 0, 1 */
    bool down_answered;
    bool has_held_enumerate;
    bool rate_has_old;
    uint8_t result_head, result_len;
    uint16_t msg_id;
    uint32_t clearing_mark;
    uint32_t boots;
    int32_t estop_msg_id; /* -1: none */
    int64_t booting_until; /* FW_NO_DEADLINE: running */
    int64_t reboot_at;
    int64_t telemetry_at;
    int64_t estop_until;
    /* the rate switch (joints/rates.py RateSwitch) */
    int64_t rate_old[2];
    int64_t switch_at, revert_at;
    uint32_t switches, reverts;
    int64_t port_rates[2];
    fw_hal_t hal;
    fw_hal_motor_t motor;
    fw_node_counters_t counters;
    fw_joint_config_t config;
    uint16_t result_ids[FW_RESULTS_KEPT];
    uint8_t result_values[FW_RESULTS_KEPT];
    fw_regs_t regs;
    /* comm core */
    fw_router_t router;
    ctl_core_t control;
    fw_packet_t held_enumerate;
    fw_packet_t scratch; /* packets built by the handlers */
    fw_link_t links[2];
} fw_joint_t;

void fw_joint_config_default(fw_joint_config_t *c, uint16_t model, uint32_t serial);
void fw_joint_init(fw_joint_t *j, const fw_joint_config_t *c, const fw_hal_t *hal, const fw_hal_motor_t *motor,
                   int64_t now);
void fw_joint_rx_byte(fw_joint_t *j, unsigned port, uint8_t byte, int64_t now);
void fw_joint_rx_block(fw_joint_t *j, unsigned port, const uint8_t *data, uint32_t n, int64_t now);
uint32_t fw_joint_tx(fw_joint_t *j, unsigned port, int64_t now, uint8_t *out, uint32_t cap);
int64_t fw_joint_next_deadline(const fw_joint_t *j);
void fw_joint_handle_timer(fw_joint_t *j, int64_t now);
void fw_joint_reboot(fw_joint_t *j, int64_t now);
void fw_joint_schedule_reboot(fw_joint_t *j, int64_t now);
static inline bool fw_joint_booting(const fw_joint_t *j) { return j->booting_until != FW_NO_DEADLINE; }
static inline uint8_t fw_joint_address(const fw_joint_t *j) { return j->regs.mem[FW_REGADDR_BUS_ADDRESS]; }

#endif
