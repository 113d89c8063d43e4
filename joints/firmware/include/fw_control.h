/* fw_control.h - the control core: the fixed-rate motor loop of a joint (C port of joints/control.py).
 *
 * Theory of operation
 * -------------------
 * This header is the contract between the comm core and the control core. It mirrors ControlCore of
 * joints/control.py call for call; the Python docstring there is the manual (tick order, safety checks, stops,
 * goal slot, envelope). Summary: ctl_handle_timer(now) runs every tick due at or before `now` (t0 + k period)
 * and latches the cyclic goal slot at its own instant; each tick advances the motor HAL to the tick instant,
 * drains the command mailbox, samples the sensors, runs the safety checks (fault events into the event mailbox,
 * latching status flags), runs the cascade position -> velocity -> current -> voltage, and publishes the state
 * snapshot (ctl_state, latest wins). ctl_estop(now) is the inter-core interrupt: it acts at once.
 *
 * The two mailboxes (fw_mailbox.h rings with typed slots): commands comm -> control (16 slots, ctl_command puts,
 * false = full: the comm core answers BUSY), fault events control -> comm (8 slots, ctl_next_event gets).
 *
 * Numbers: every computation is in double, in the operation order of the Python, compiled with
 * -ffp-contract=off and no fast-math, so the state snapshots and fault events equal the Python's bit for bit.
 *
 * Memory: ctl_core_t is a complete fixed-size type; no heap, no globals. The core keeps pointers to the register
 * file and to the caller's motor HAL (which must outlive it).
 *
 * Registers: the core reads its limits and gains from the persistent registers of the register file
 * (`struct fw_regs`, the comm core's generated table and src/registers.c) on init, on torque enable and on a
 * RELOAD command, as ControlCore.reload reads RegisterFile.
 */
#ifndef FW_CONTROL_H
#define FW_CONTROL_H

#include <stdbool.h>
#include <stdint.h>

#include "fw_hal_motor.h"
#include "fw_mailbox.h"
#include "fw_wire_gen.h"

struct fw_regs; /* the register file (comm core) */

/* The wire constants (status flags FW_STATUS_*, fault codes FW_FAULT_*, goal modes FW_GOAL_*, command kinds
 * FW_CMD_*, mailbox sizes, FW_BLOCKING_FLAGS) come from the generated gen/fw_wire_gen.h. */
#define CTL_COMMAND_CAPACITY ((uint32_t)FW_COMMAND_MAILBOX_SIZE)
#define CTL_EVENT_CAPACITY ((uint32_t)FW_EVENT_MAILBOX_SIZE)
/* the rings wrap their indices with a mask: capacities must be powers of two */
typedef char ctl_command_capacity_is_a_power_of_two[(FW_COMMAND_MAILBOX_SIZE & (FW_COMMAND_MAILBOX_SIZE - 1)) ? -1 : 1];
typedef char ctl_event_capacity_is_a_power_of_two[(FW_EVENT_MAILBOX_SIZE & (FW_EVENT_MAILBOX_SIZE - 1)) ? -1 : 1];

typedef struct ctl_command {
    uint8_t kind; /* FW_CMD_*: SET_GOAL a = goal mode, b = value (urad, urad/s or mA); TORQUE a = 0/1;
                     * HEARTBEAT; WATCHDOG a = period ms (0 off); CLEAR a = status bits; RELEASE_ESTOP; RELOAD */
    int32_t a;
    int32_t b;
} ctl_command_t;

/* FaultEvent: a fault became active or cleared; value in register units. */
typedef struct ctl_event {
    uint8_t code;   /* FW_FAULT_* */
    uint8_t active; /* 1 active, 0 cleared */
    int32_t value;
} ctl_event_t;

/* ControlState: the snapshot in register units (the register state block). */
typedef struct ctl_state {
    int32_t position;    /* urad */
    int32_t velocity;    /* urad/s */
    int16_t current;     /* mA */
    int16_t temperature; /* 0.1 degC */
    uint16_t voltage;    /* mV */
    uint8_t status;      /* FW_STATUS_* flags */
} ctl_state_t;

/* Observers (measurement only: they read the core and must not change it). */
typedef void (*ctl_tick_hook_fn)(void *ctx, int64_t t);
typedef void (*ctl_latch_hook_fn)(void *ctx, int64_t at, uint16_t tag);

typedef struct ctl_core {
    /* wiring */
    struct fw_regs *regs;
    fw_hal_motor_t motor;
    int64_t period_ns;
    double dt;
    double alpha;               /* velocity filter coefficient */
    /* mailboxes */
    fw_ring_t commands;         /* slots at the end of the struct */
    fw_ring_t events;
    uint32_t estop_mark;        /* commands.posted when the last e-stop came */
    uint32_t stale_releases;
    /* hooks */
    ctl_tick_hook_fn tick_hook;
    void *tick_hook_ctx;
    ctl_latch_hook_fn latch_hook;
    void *latch_hook_ctx;
    /* timing and the goal slot */
    int64_t next_tick;
    int64_t sampled_at;
    bool slot_full;
    uint8_t slot_mode;
    uint16_t slot_tag;
    int32_t slot_value;
    int64_t slot_at;
    uint32_t goals_latched;
    /* state */
    uint32_t flags;
    bool torque;
    uint8_t mode;
    int32_t goal;
    bool holding;
    double hold_position;
    bool braking;
    int64_t watchdog_ns;
    int64_t last_heartbeat;
    uint32_t active_bits;       /* 1 << code of the active faults */
    double t_overcurrent, t_stall, t_undervoltage;
    double v_int, i_int, v_cmd, v_prev, v_seen;
    bool recovering;            /* powered while faster than the velocity envelope: braking without integrating */
    double i_ref, i_applied;
    double position, velocity, current, temperature, voltage;
    double counts_per_rad;
    /* limits and gains (ctl_reload) */
    double p_min, p_max, v_lim, i_lim, t_lim, v_min;
    double kp_p, kp_v, ki_v, kp_i, ki_i;
    double a_brake, a_slew, j_over_kt;
    double overtemp_clear, overcurrent, stall_current, velocity_excursion;
    /* model constants from the HAL's parameters */
    double resistance, ke_n;
    ctl_state_t state;
    /* the mailboxes' slots last: on Thumb the fields above stay a short offset away */
    ctl_command_t command_slots[CTL_COMMAND_CAPACITY];
    ctl_event_t event_slots[CTL_EVENT_CAPACITY];
} ctl_core_t;

/* ControlCore(actuator, registers, period_ns, now). `motor` is copied; its ctx and params must outlive the core. */
void ctl_init(ctl_core_t *c, struct fw_regs *regs, const fw_hal_motor_t *motor, int64_t period_ns, int64_t now);
/* Read limits and gains from the persistent registers. */
void ctl_reload(ctl_core_t *c);
/* Time of the next tick, or of the cyclic goal's latch when that comes first. */
int64_t ctl_next_deadline(const ctl_core_t *c);
/* Run every tick due at or before `now` (and the tick hook after each); latch the goal slot at its instant. */
void ctl_handle_timer(ctl_core_t *c, int64_t now);
/* Emergency stop effective at `now` (the inter-core interrupt): short-brake at once, then brake and hold. */
void ctl_estop(ctl_core_t *c, int64_t now);
/* Goal slot: a cyclic goal latched at `at` (replaces one not yet latched). */
void ctl_post_goal(ctl_core_t *c, uint8_t mode, int32_t value, int64_t at, uint16_t tag);
/* Command mailbox put; false (counted) when full. */
bool ctl_command(ctl_core_t *c, const ctl_command_t *cmd);
/* Fault-event mailbox get; false when empty. */
bool ctl_next_event(ctl_core_t *c, ctl_event_t *out);
/* Observers; NULL removes. */
void ctl_set_tick_hook(ctl_core_t *c, ctl_tick_hook_fn fn, void *ctx);
void ctl_set_latch_hook(ctl_core_t *c, ctl_latch_hook_fn fn, void *ctx);

/* What the comm core reads. */
const ctl_state_t *ctl_state(const ctl_core_t *c); /* the latest snapshot */
uint8_t ctl_flags(const ctl_core_t *c);            /* live status flags (ControlCore.flags) */
bool ctl_torque(const ctl_core_t *c);              /* ControlCore.torque */
int64_t ctl_sampled_at(const ctl_core_t *c);       /* instant of the latest sensor sample */
bool ctl_events_pending(const ctl_core_t *c);      /* the event ring is non-empty (Mailbox.__bool__) */
uint32_t ctl_commands_posted(const ctl_core_t *c); /* command ring marks: a post marked m is taken once */
uint32_t ctl_commands_taken(const ctl_core_t *c);  /* taken - m >= 0 (see fw_ring_taken_since) */
uint32_t ctl_commands_len(const ctl_core_t *c);
uint32_t ctl_commands_free(const ctl_core_t *c);
uint32_t ctl_commands_refused(const ctl_core_t *c);
uint32_t ctl_events_refused(const ctl_core_t *c);
uint32_t ctl_goals_latched(const ctl_core_t *c);   /* cyclic goals latched (ControlCore.goals_latched) */
uint32_t ctl_stale_releases(const ctl_core_t *c);  /* releases queued before an e-stop, dropped */

#endif /* FW_CONTROL_H */
