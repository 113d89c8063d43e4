/* control.c - the control core: the fixed-rate motor loop (C port of joints/control.py; see fw_control.h).
 *
 * Theory of operation
 * -------------------
 * A line-by-line port of ControlCore: the same fields, the same tick order, the same arithmetic in the same
 * operation order on doubles (built with -ffp-contract=off, no fast-math), so the state snapshots and fault
 * events equal the Python's bit for bit. The Python builtins are spelled out where C differs: min()/max()
 * (py_min/py_max keep the first argument unless another is strictly smaller/greater: the sign of a zero
 * follows), round() (nearbyint: half to even in the default rounding mode), `//` (floor division), abs().
 */
#include "fw_control.h"

#include <math.h>
#include <stddef.h>

#include "fw_regs.h"

#define VELOCITY_FILTER_HZ 400.0
#define MOVING_THRESHOLD 0.02
#define BRAKE_FRACTION 0.5
#define SLEW_FRACTION 0.8
#define OVERCURRENT_FACTOR 1.25
#define OVERCURRENT_MARGIN 0.2
#define OVERCURRENT_TIME 0.010
#define STALL_FRACTION 0.9
#define STALL_SPEED 0.05
#define STALL_TIME 0.5
#define UNDERVOLTAGE_TIME 0.010
#define OVERTEMP_HYSTERESIS 5.0
#define POSITION_EXCURSION 0.05
#define VELOCITY_EXCURSION 0.2
#define COPPER_ALPHA 0.00393
#define TWO_PI (2.0 * 3.141592653589793)

#define STOPS (FW_STATUS_ESTOPPED | FW_STATUS_WATCHDOG)
#define BIT(code) (1u << (code))

/* --- Python builtins ------------------------------------------------------------------------------------ */
static double py_min(double a, double b)
{
    return b < a ? b : a;
}

static double py_max(double a, double b)
{
    return b > a ? b : a;
}

static double py_abs(double a)
{
    return fabs(a);
}

/* round(x) to an int, saturated to int32 (the values reported fit; a wild one cannot overflow the event). */
static int32_t py_round_i32(double x)
{
    double r = nearbyint(x);
    if (r >= 2147483647.0) {
        return INT32_MAX;
    }
    if (r <= -2147483648.0) {
        return INT32_MIN;
    }
    return (int32_t)r;
}

static int64_t floordiv64(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        q--;
    }
    return q;
}

/* --- ActuatorParams' properties ------------------------------------------------------------------------- */
void fw_motor_params_default(fw_motor_params_t *p)
{
    p->supply_voltage = 12.0;
    p->resistance = 5.2;
    p->inductance = 0.2e-3;
    p->torque_constant = 7.05e-3;
    p->gear_ratio = 353.5;
    p->gear_efficiency = 0.72;
    p->rotor_inertia = 0.9e-7;
    p->load_inertia = 3.0e-3;
    p->viscous_friction = 0.02;
    p->coulomb_friction = 0.08;
    p->hw_current_limit = 2.5;
    p->ambient_temperature = 25.0;
    p->thermal_resistance = 30.0;
    p->thermal_time_constant = 60.0;
    p->encoder_counts_per_motor_rev = 4096;
    p->current_noise = 0.005;
    p->temperature_noise = 0.1;
    p->voltage_noise = 0.02;
    p->encoder_noise_counts = 0.0;
    p->max_step_ns = 500000;
}

double fw_motor_output_inertia(const fw_motor_params_t *p)
{
    /* Python's float ** 2 calls libm pow(): called through a volatile pointer so that the compiler does not
     * turn it into x * x (the same number only when pow is correctly rounded there). */
    double (*volatile pw)(double, double) = pow;
    return p->rotor_inertia * pw(p->gear_ratio, 2.0) + p->load_inertia;
}

double fw_motor_output_torque_constant(const fw_motor_params_t *p)
{
    return p->torque_constant * p->gear_ratio * p->gear_efficiency;
}

double fw_motor_counts_per_output_rad(const fw_motor_params_t *p)
{
    return (double)p->encoder_counts_per_motor_rev * p->gear_ratio / TWO_PI;
}

/* --- events and flags ----------------------------------------------------------------------------------- */
static void event(ctl_core_t *c, uint8_t code, bool active, int32_t value)
{
    uint32_t k;
    if (active) {
        c->active_bits |= BIT(code);
    } else {
        c->active_bits &= ~BIT(code);
    }
    if (fw_ring_reserve(&c->events, &k)) { /* refused: still latched in flags / fault_code */
        c->event_slots[k].code = code;
        c->event_slots[k].active = active ? 1u : 0u;
        c->event_slots[k].value = value;
        fw_ring_commit(&c->events);
    }
}

static void trip(ctl_core_t *c, uint8_t code, int32_t value)
{
    c->torque = false;
    c->flags |= FW_STATUS_FAULT;
    event(c, code, true, value);
}

static void start_stop(ctl_core_t *c)
{
    c->braking = true;
    c->holding = true;
    c->slot_full = false;
}

static void clear(ctl_core_t *c, uint32_t bits, int64_t t)
{
    if ((bits & FW_STATUS_ESTOPPED) && (c->flags & FW_STATUS_ESTOPPED)) {
        c->flags &= ~FW_STATUS_ESTOPPED;
        event(c, FW_FAULT_ESTOP, false, 0);
    }
    if ((bits & FW_STATUS_WATCHDOG) && (c->flags & FW_STATUS_WATCHDOG)) {
        c->flags &= ~FW_STATUS_WATCHDOG;
        c->last_heartbeat = t;
        event(c, FW_FAULT_WATCHDOG, false, 0);
    }
    if ((bits & FW_STATUS_FAULT) && !(c->active_bits & (BIT(FW_FAULT_OVER_TEMPERATURE) | BIT(FW_FAULT_UNDERVOLTAGE)))) {
        c->flags &= ~FW_STATUS_FAULT;
    }
    c->flags &= ~(bits & FW_STATUS_REBOOTED);
}

/* --- configuration -------------------------------------------------------------------------------------- */
void ctl_reload(ctl_core_t *c)
{
    const struct fw_regs *r = c->regs;
    const fw_motor_params_t *m = c->motor.params;
    double a_max;
    c->p_min = (double)fw_regs_get(r, FW_REG_POSITION_MIN) * 1e-6;
    c->p_max = (double)fw_regs_get(r, FW_REG_POSITION_MAX) * 1e-6;
    c->v_lim = (double)fw_regs_get(r, FW_REG_VELOCITY_LIMIT) * 1e-6;
    c->i_lim = (double)fw_regs_get(r, FW_REG_CURRENT_LIMIT) * 1e-3;
    c->t_lim = (double)fw_regs_get(r, FW_REG_TEMPERATURE_LIMIT) * 0.1;
    c->v_min = (double)fw_regs_get(r, FW_REG_MIN_VOLTAGE) * 1e-3;
    c->kp_p = (double)fw_regs_get(r, FW_REG_POS_KP) * 0.01;
    c->kp_v = (double)fw_regs_get(r, FW_REG_VEL_KP) * 1e-3;
    c->ki_v = (double)fw_regs_get(r, FW_REG_VEL_KI) * 1e-3;
    c->kp_i = (double)fw_regs_get(r, FW_REG_CUR_KP) * 1e-3;
    c->ki_i = (double)fw_regs_get(r, FW_REG_CUR_KI);
    a_max = c->i_lim * fw_motor_output_torque_constant(m) / fw_motor_output_inertia(m);
    c->a_brake = BRAKE_FRACTION * a_max;
    c->a_slew = SLEW_FRACTION * a_max;
    c->j_over_kt = fw_motor_output_inertia(m) / fw_motor_output_torque_constant(m);
    c->overtemp_clear = c->t_lim - OVERTEMP_HYSTERESIS;
    c->overcurrent = OVERCURRENT_FACTOR * c->i_lim + OVERCURRENT_MARGIN;
    c->stall_current = STALL_FRACTION * c->i_lim;
    c->velocity_excursion = c->v_lim * 1.2 + VELOCITY_EXCURSION;
}

static void snapshot(ctl_core_t *c)
{
    double p, v, i, t, u;
    uint32_t flags = c->flags;
    flags = c->torque ? (flags | FW_STATUS_TORQUE_ON) : (flags & ~FW_STATUS_TORQUE_ON);
    c->flags = flags;
    /* saturate to the register types (i32, i32, i16, i16, u16) */
    p = nearbyint(c->position * 1e6);
    v = nearbyint(c->velocity * 1e6);
    i = nearbyint(c->current * 1000);
    t = nearbyint(c->temperature * 10);
    u = nearbyint(c->voltage * 1000);
    c->state.position = (-2147483648.0 <= p && p <= 2147483647.0) ? (int32_t)p : (p > 0 ? INT32_MAX : INT32_MIN);
    c->state.velocity = (-2147483648.0 <= v && v <= 2147483647.0) ? (int32_t)v : (v > 0 ? INT32_MAX : INT32_MIN);
    c->state.current = (-32768.0 <= i && i <= 32767.0) ? (int16_t)i : (int16_t)(i > 0 ? INT16_MAX : INT16_MIN);
    c->state.temperature = (-32768.0 <= t && t <= 32767.0) ? (int16_t)t : (int16_t)(t > 0 ? INT16_MAX : INT16_MIN);
    c->state.voltage = (0.0 <= u && u <= 65535.0) ? (uint16_t)u : (uint16_t)(u > 0 ? UINT16_MAX : 0);
    c->state.status = (uint8_t)flags;
}

void ctl_init(ctl_core_t *c, struct fw_regs *regs, const fw_hal_motor_t *motor, int64_t period_ns, int64_t now)
{
    const fw_hal_motor_t *act;
    c->regs = regs;
    c->motor = *motor;
    act = &c->motor;
    c->period_ns = period_ns;
    c->dt = (double)period_ns * 1e-9;
    fw_ring_init(&c->commands, CTL_COMMAND_CAPACITY);
    fw_ring_init(&c->events, CTL_EVENT_CAPACITY);
    c->estop_mark = 0u;
    c->stale_releases = 0u;
    c->tick_hook = NULL;
    c->tick_hook_ctx = NULL;
    c->latch_hook = NULL;
    c->latch_hook_ctx = NULL;
    c->next_tick = now + period_ns;
    c->sampled_at = now;
    c->slot_full = false;
    c->slot_mode = 0u;
    c->slot_tag = 0u;
    c->slot_value = 0;
    c->slot_at = 0;
    c->goals_latched = 0u;
    c->alpha = 1.0 - exp(-2.0 * 3.141592653589793 * VELOCITY_FILTER_HZ * c->dt);
    c->flags = FW_STATUS_REBOOTED;
    c->torque = false;
    c->mode = FW_GOAL_POSITION;
    c->goal = 0;
    c->holding = true;
    c->hold_position = 0.0;
    c->braking = false;
    c->watchdog_ns = 0;
    c->last_heartbeat = now;
    c->active_bits = 0u;
    c->t_overcurrent = c->t_stall = c->t_undervoltage = 0.0;
    c->v_int = 0.0;
    c->i_int = 0.0;
    c->recovering = false;
    c->v_cmd = 0.0;
    c->v_prev = 0.0;
    c->v_seen = 0.0;
    c->i_ref = 0.0;
    c->i_applied = 0.0;
    c->counts_per_rad = fw_motor_counts_per_output_rad(act->params);
    c->position = (double)act->encoder_counts(act->ctx) / c->counts_per_rad;
    c->velocity = 0.0;
    c->current = 0.0;
    c->temperature = act->sensed_temperature(act->ctx);
    c->voltage = act->sensed_voltage(act->ctx);
    c->resistance = act->params->resistance;
    c->ke_n = act->params->torque_constant * act->params->gear_ratio;
    ctl_reload(c);
    snapshot(c);
}

/* --- sans-I/O driving ----------------------------------------------------------------------------------- */
int64_t ctl_next_deadline(const ctl_core_t *c)
{
    if (c->slot_full && c->slot_at < c->next_tick) {
        return c->slot_at;
    }
    return c->next_tick;
}

void ctl_post_goal(ctl_core_t *c, uint8_t mode, int32_t value, int64_t at, uint16_t tag)
{
    c->slot_full = true;
    c->slot_mode = mode;
    c->slot_value = value;
    c->slot_at = at;
    c->slot_tag = tag;
}

static void tick(ctl_core_t *c, int64_t t);

static void run_tick(ctl_core_t *c)
{
    int64_t t = c->next_tick;
    c->next_tick += c->period_ns;
    tick(c, t);
    if (c->tick_hook != NULL) {
        c->tick_hook(c->tick_hook_ctx, t);
    }
}

static void latch(ctl_core_t *c)
{
    int64_t at = c->slot_at;
    c->slot_full = false;
    if (!(c->flags & FW_BLOCKING_FLAGS)) {
        c->mode = c->slot_mode;
        c->goal = c->slot_value;
        c->holding = false;
        c->last_heartbeat = at;
        c->goals_latched++;
        if (c->latch_hook != NULL) {
            c->latch_hook(c->latch_hook_ctx, at, c->slot_tag);
        }
    }
}

void ctl_handle_timer(ctl_core_t *c, int64_t now)
{
    if (c->slot_full && c->slot_at <= now) {
        while (c->next_tick <= c->slot_at) { /* the ticks before the latch instant run first */
            run_tick(c);
        }
        latch(c);
    }
    while (c->next_tick <= now) {
        run_tick(c);
    }
}

void ctl_estop(ctl_core_t *c, int64_t now)
{
    const fw_hal_motor_t *act = &c->motor;
    act->advance(act->ctx, now);
    if (c->torque) {
        act->set_voltage(act->ctx, 0.0);
        c->i_applied = 0.0;
    }
    c->estop_mark = c->commands.tail;
    c->slot_full = false; /* a cyclic goal not yet latched never follows a stop */
    if (!(c->flags & FW_STATUS_ESTOPPED)) {
        c->flags |= FW_STATUS_ESTOPPED;
        start_stop(c);
        event(c, FW_FAULT_ESTOP, true, 0);
    }
}

bool ctl_command(ctl_core_t *c, const ctl_command_t *cmd)
{
    uint32_t k;
    if (!fw_ring_reserve(&c->commands, &k)) {
        return false;
    }
    c->command_slots[k] = *cmd;
    fw_ring_commit(&c->commands);
    return true;
}

bool ctl_next_event(ctl_core_t *c, ctl_event_t *out)
{
    uint32_t k;
    if (!fw_ring_peek(&c->events, &k)) {
        return false;
    }
    *out = c->event_slots[k];
    fw_ring_release(&c->events);
    return true;
}

void ctl_set_tick_hook(ctl_core_t *c, ctl_tick_hook_fn fn, void *ctx)
{
    c->tick_hook = fn;
    c->tick_hook_ctx = ctx;
}

void ctl_set_latch_hook(ctl_core_t *c, ctl_latch_hook_fn fn, void *ctx)
{
    c->latch_hook = fn;
    c->latch_hook_ctx = ctx;
}

/* --- commands ------------------------------------------------------------------------------------------- */
static bool releases_estop(const ctl_command_t *cmd)
{
    return cmd->kind == FW_CMD_RELEASE_ESTOP || (cmd->kind == FW_CMD_CLEAR && ((uint32_t)cmd->a & FW_STATUS_ESTOPPED));
}

static void command(ctl_core_t *c, const ctl_command_t *cmd, int64_t t)
{
    switch (cmd->kind) {
    case FW_CMD_SET_GOAL:
        if (!(c->flags & FW_BLOCKING_FLAGS)) {
            c->mode = (uint8_t)cmd->a;
            c->goal = cmd->b;
            c->holding = false;
        }
        break;
    case FW_CMD_TORQUE:
        if (cmd->a && !c->torque && !(c->flags & FW_BLOCKING_FLAGS)) {
            ctl_reload(c);
            c->torque = true;
            c->last_heartbeat = t;
            c->v_int = c->i_int = 0.0;
            c->v_cmd = c->v_prev = c->v_seen = c->velocity;
            c->holding = true;
            c->braking = false;
            c->hold_position = c->position;
            c->recovering = py_abs(c->velocity) > c->v_lim;
        } else if (!cmd->a) {
            c->torque = false;
        }
        break;
    case FW_CMD_HEARTBEAT:
        c->last_heartbeat = t;
        break;
    case FW_CMD_WATCHDOG:
        c->watchdog_ns = (int64_t)cmd->a * 1000000;
        c->last_heartbeat = t;
        break;
    case FW_CMD_CLEAR:
        clear(c, (uint32_t)cmd->a & 0xFFu, t);
        break;
    case FW_CMD_RELEASE_ESTOP:
        clear(c, FW_STATUS_ESTOPPED, t);
        break;
    case FW_CMD_RELOAD:
        ctl_reload(c);
        break;
    default:
        break;
    }
}

/* --- safety --------------------------------------------------------------------------------------------- */
static void safety(ctl_core_t *c, int64_t t)
{
    double dt = c->dt;
    uint32_t flags = c->flags, active = c->active_bits;
    double temp = c->temperature, vel, pos;
    bool low_v, beyond, too_fast;
    int64_t wd;
    if (temp >= c->t_lim && !(flags & FW_STATUS_OVERHEAT)) {
        c->flags |= FW_STATUS_OVERHEAT;
        trip(c, FW_FAULT_OVER_TEMPERATURE, py_round_i32(temp * 10));
    } else if ((flags & FW_STATUS_OVERHEAT) && temp < c->overtemp_clear) {
        c->flags &= ~FW_STATUS_OVERHEAT;
        event(c, FW_FAULT_OVER_TEMPERATURE, false, py_round_i32(temp * 10));
    }
    low_v = c->voltage < c->v_min;
    if (low_v) {
        c->t_undervoltage += dt;
        if (c->t_undervoltage >= UNDERVOLTAGE_TIME && !(active & BIT(FW_FAULT_UNDERVOLTAGE))) {
            trip(c, FW_FAULT_UNDERVOLTAGE, py_round_i32(c->voltage * 1000));
        }
    } else {
        c->t_undervoltage = 0.0;
        if (active & BIT(FW_FAULT_UNDERVOLTAGE)) {
            event(c, FW_FAULT_UNDERVOLTAGE, false, py_round_i32(c->voltage * 1000));
        }
    }
    if (py_abs(c->current) > c->overcurrent) {
        c->t_overcurrent += dt;
        if (c->t_overcurrent >= OVERCURRENT_TIME && c->torque) {
            trip(c, FW_FAULT_OVER_CURRENT, py_round_i32(c->current * 1000));
        }
    } else {
        c->t_overcurrent = 0.0;
    }
    vel = c->velocity;
    if (c->torque && py_abs(c->i_ref) >= c->stall_current && c->i_lim > 0.0 && py_abs(vel) < STALL_SPEED) {
        c->t_stall += dt;
        if (c->t_stall >= STALL_TIME) {
            c->t_stall = 0.0;
            trip(c, FW_FAULT_STALL, py_round_i32(c->i_ref * 1000));
        }
    } else {
        c->t_stall = 0.0;
    }
    wd = c->watchdog_ns;
    if (wd && c->torque && !(c->flags & FW_STATUS_WATCHDOG) && t - c->last_heartbeat >= wd) {
        int64_t late = floordiv64(t - c->last_heartbeat, 1000000);
        c->flags |= FW_STATUS_WATCHDOG | FW_STATUS_FAULT;
        start_stop(c);
        event(c, FW_FAULT_WATCHDOG, true, late > INT32_MAX ? INT32_MAX : (int32_t)late);
    }
    /* excursions beyond the limits: reported when they start and when they end (values only then) */
    pos = c->position;
    beyond = py_max(c->p_min - pos, pos - c->p_max) > POSITION_EXCURSION;
    if (beyond != ((c->active_bits & BIT(FW_FAULT_POSITION_LIMIT)) != 0u)) {
        event(c, FW_FAULT_POSITION_LIMIT, beyond, py_round_i32(pos * 1e6));
    }
    too_fast = py_abs(vel) > c->velocity_excursion;
    if (too_fast != ((c->active_bits & BIT(FW_FAULT_VELOCITY_LIMIT)) != 0u)) {
        event(c, FW_FAULT_VELOCITY_LIMIT, too_fast, py_round_i32(vel * 1e6));
    }
}

/* --- the cascade ---------------------------------------------------------------------------------------- */
static double approach(const ctl_core_t *c, double err)
{
    double v = c->kp_p * err;
    if (err > 0.0) {
        return py_min(v, sqrt(2.0 * c->a_brake * err));
    }
    if (err < 0.0) {
        return py_max(v, -sqrt(-2.0 * c->a_brake * err));
    }
    return 0.0;
}

static double velocity_loop(ctl_core_t *c, double v_ref)
{
    double err = v_ref - c->velocity;
    double i = c->kp_v * err + c->v_int;
    double lim = c->i_lim;
    if (c->recovering) { /* slowing a joint powered while too fast: integrate nothing (see control) */
        return i;
    }
    if ((-lim < i && i < lim) || (i >= lim && err < 0) || (i <= -lim && err > 0)) {
        c->v_int = py_min(py_max(c->v_int + c->ki_v * err * c->dt, -lim), lim); /* conditional integration */
    }
    return i;
}

static double current_loop(ctl_core_t *c, double i_ref)
{
    double r = c->resistance * (1.0 + COPPER_ALPHA * (c->temperature - 20.0));
    double vmax = c->voltage;
    double err = c->i_applied - c->current;
    double v;
    c->i_applied = i_ref;
    v = r * i_ref + c->ke_n * c->velocity + c->kp_i * err + c->i_int;
    if ((-vmax < v && v < vmax) || (v >= vmax && err < 0) || (v <= -vmax && err > 0)) {
        c->i_int = py_min(py_max(c->i_int + c->ki_i * err * c->dt, -vmax), vmax);
    }
    return py_min(py_max(v, -vmax), vmax);
}

/* min(a, b, c) as Python: the first argument unless a later one is strictly smaller. */
static double py_min3(double a, double b, double c)
{
    return py_min(py_min(a, b), c);
}

static double py_max3(double a, double b, double c)
{
    return py_max(py_max(a, b), c);
}

static double control(ctl_core_t *c)
{
    double pos = c->position, vel = c->velocity;
    bool limited = false, have_ref = true;
    double d_hi = c->p_max - pos, d_lo = pos - c->p_min;
    double v_hi, v_lo, v_ref = 0.0, i_ref;
    v_hi = py_min3(c->v_lim, c->kp_p > 0 ? c->kp_p * d_hi : d_hi * 20.0,
                   d_hi > 0 ? sqrt(2.0 * c->a_brake * d_hi) : 0.0);
    v_lo = -py_min3(c->v_lim, c->kp_p > 0 ? c->kp_p * d_lo : d_lo * 20.0,
                    d_lo > 0 ? sqrt(2.0 * c->a_brake * d_lo) : 0.0);
    /* outside the range the envelope points back inside, bounded by the velocity limit */
    v_hi = py_max(v_hi, -c->v_lim);
    v_lo = py_min(v_lo, c->v_lim);
    if (c->braking) {
        v_ref = 0.0;
        if (py_abs(vel) < MOVING_THRESHOLD) {
            c->braking = false;
            c->hold_position = pos;
        }
    } else if (c->holding) {
        v_ref = approach(c, c->hold_position - pos);
    } else if (c->mode == FW_GOAL_POSITION) {
        double goal = (double)c->goal * 1e-6;
        if (!(c->p_min <= goal && goal <= c->p_max)) {
            goal = py_min(py_max(goal, c->p_min), c->p_max);
            limited = true;
        }
        v_ref = approach(c, goal - pos);
    } else if (c->mode == FW_GOAL_VELOCITY) {
        v_ref = (double)c->goal * 1e-6;
    } else {
        have_ref = false;
    }
    if (c->recovering && v_lo <= vel && vel <= v_hi) {
        /* back inside the envelope: the plan starts again from here with an empty integrator */
        c->recovering = false;
        c->v_cmd = c->v_prev = c->v_seen = vel;
        c->v_int = 0.0;
    }
    if (have_ref) {
        double step, now_ref, nxt, seen;
        if (v_ref > v_hi || v_ref < v_lo) {
            v_ref = py_min(py_max(v_ref, v_lo), v_hi);
            limited = true;
        }
        step = c->a_slew * c->dt;
        now_ref = v_hi >= v_lo ? py_min(py_max(c->v_cmd, v_lo), v_hi) : v_hi;
        nxt = v_hi >= v_lo ? py_min3(py_max3(v_ref, now_ref - step, v_lo), now_ref + step, v_hi) : v_hi;
        c->v_cmd = nxt;
        seen = c->v_seen = c->v_seen + c->alpha * (0.5 * (c->v_prev + now_ref) - c->v_seen);
        c->v_prev = now_ref;
        i_ref = velocity_loop(c, seen) + (nxt - now_ref) / c->dt * c->j_over_kt;
    } else {
        double i_goal;
        c->v_cmd = c->v_prev = c->v_seen = vel;
        c->v_int = 0.0;
        i_goal = (double)c->goal * 1e-3;
        i_ref = py_min(py_max(i_goal, c->kp_v * (v_lo - vel)), c->kp_v * (v_hi - vel));
        limited = i_ref != i_goal;
    }
    if (i_ref > c->i_lim || i_ref < -c->i_lim) {
        i_ref = py_min(py_max(i_ref, -c->i_lim), c->i_lim);
        limited = limited || !have_ref; /* saturating the velocity loop is normal, not a clamp */
    }
    if (limited) {
        c->flags |= FW_STATUS_AT_LIMIT;
    }
    c->i_ref = i_ref;
    return current_loop(c, i_ref);
}

/* --- the tick ------------------------------------------------------------------------------------------- */
static void tick(ctl_core_t *c, int64_t t)
{
    const fw_hal_motor_t *act = &c->motor;
    fw_ring_t *box = &c->commands;
    uint32_t k;
    double pos, raw;
    act->advance(act->ctx, t);
    if (fw_ring_nonempty(box)) {
        /* queued before the last e-stop: no release may undo it */
        while ((int32_t)(box->head - c->estop_mark) < 0 && fw_ring_peek(box, &k)) {
            ctl_command_t cmd = c->command_slots[k];
            fw_ring_release(box);
            if (releases_estop(&cmd)) {
                c->stale_releases++;
            } else {
                command(c, &cmd, t);
            }
        }
        while (fw_ring_peek(box, &k)) {
            ctl_command_t cmd = c->command_slots[k];
            fw_ring_release(box);
            command(c, &cmd, t);
        }
    }
    pos = (double)act->encoder_counts(act->ctx) / c->counts_per_rad;
    c->sampled_at = t;
    raw = (pos - c->position) / c->dt;
    c->velocity += c->alpha * (raw - c->velocity);
    c->position = pos;
    c->current = act->sensed_current(act->ctx);
    c->temperature = act->sensed_temperature(act->ctx);
    c->voltage = act->sensed_voltage(act->ctx);
    safety(c, t);
    c->flags &= ~FW_STATUS_AT_LIMIT;
    if (c->torque) {
        act->set_voltage(act->ctx, control(c));
        if ((c->flags & STOPS) && !c->braking) { /* braked to standstill: a stop removes torque */
            c->torque = false;
            c->i_ref = c->i_applied = 0.0;
            act->coast(act->ctx);
        }
    } else {
        c->i_ref = c->i_applied = 0.0;
        act->coast(act->ctx);
    }
    if (py_abs(c->velocity) > MOVING_THRESHOLD) {
        c->flags |= FW_STATUS_MOVING;
    } else {
        c->flags &= ~FW_STATUS_MOVING;
    }
    snapshot(c);
}

/* --- accessors ------------------------------------------------------------------------------------------ */
const ctl_state_t *ctl_state(const ctl_core_t *c)
{
    return &c->state;
}

uint8_t ctl_flags(const ctl_core_t *c)
{
    return (uint8_t)c->flags;
}

bool ctl_torque(const ctl_core_t *c)
{
    return c->torque;
}

int64_t ctl_sampled_at(const ctl_core_t *c)
{
    return c->sampled_at;
}

bool ctl_events_pending(const ctl_core_t *c)
{
    return fw_ring_nonempty(&c->events);
}

uint32_t ctl_commands_posted(const ctl_core_t *c)
{
    return c->commands.tail;
}

uint32_t ctl_commands_taken(const ctl_core_t *c)
{
    return c->commands.head;
}

uint32_t ctl_commands_len(const ctl_core_t *c)
{
    return fw_ring_len(&c->commands);
}

uint32_t ctl_commands_free(const ctl_core_t *c)
{
    return fw_ring_free(&c->commands);
}

uint32_t ctl_commands_refused(const ctl_core_t *c)
{
    return c->commands.refused;
}

uint32_t ctl_events_refused(const ctl_core_t *c)
{
    return c->events.refused;
}

uint32_t ctl_goals_latched(const ctl_core_t *c)
{
    return c->goals_latched;
}

uint32_t ctl_stale_releases(const ctl_core_t *c)
{
    return c->stale_releases;
}
