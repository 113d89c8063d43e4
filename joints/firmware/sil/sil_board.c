/* sil_board.c - the actuator physics behind the motor HAL (C port of joints/actuator.py; see sil_board.h). */
#include "sil_board.h"

#include <math.h>

#include "fw_control.h"

#define COPPER_ALPHA 0.00393

size_t sil_board_size(void)
{
    return sizeof(sil_board_t);
}

/* --- the physics ---------------------------------------------------------------------------------------- */
static void exps(sil_board_t *b, double h, double *e, double *et)
{
    if (h != b->cache_h) {
        b->cache_h = h;
        b->cache_e = exp(-h / b->tau_e);
        b->cache_t = exp(-h / b->params.thermal_time_constant);
    }
    *e = b->cache_e;
    *et = b->cache_t;
}

static void integrate(sil_board_t *b, double h, int64_t n)
{
    const fw_motor_params_t *p = &b->params;
    sil_board_state_t *s = &b->s;
    double e, et;
    double vs = s->supply_voltage, v = s->voltage_cmd;
    double r20 = p->resistance, rth = p->thermal_resistance, lim = p->hw_current_limit;
    double tc = p->coulomb_friction, j = b->j;
    double hj, den, ke_n, kt = b->kt_out, load = s->load_torque, amb = s->ambient_temperature;
    int bridge = s->bridge_on != 0, jammed = s->jammed != 0;
    double w = s->velocity, i = s->current, pos = s->position, temp = s->temperature;
    int64_t k;
    exps(b, h, &e, &et);
    v = v > vs ? vs : (v < -vs ? -vs : v);
    hj = h / j;
    den = 1.0 + h * p->viscous_friction / j;
    ke_n = b->ke_m * b->n;
    for (k = 0; k < n; k++) {
        double r = r20 * (1.0 + COPPER_ALPHA * (temp - 20.0));
        double i_ss = bridge ? (v - ke_n * w) / r : 0.0;
        double w_new, t_ss;
        /* electrical: exact for constant speed over the step, then the driver's chopper limit */
        i = i_ss + (i - i_ss) * e;
        i = i > lim ? lim : (i < -lim ? -lim : i);
        /* mechanical */
        if (jammed) {
            w_new = 0.0;
        } else {
            double drive = kt * i + load;
            if (w == 0.0) {
                if (-tc <= drive && drive <= tc) {
                    w_new = 0.0;
                } else {
                    double net = drive > 0.0 ? drive - tc : drive + tc;
                    w_new = hj * net / den;
                }
            } else {
                double net = drive - (w > 0.0 ? tc : -tc);
                w_new = (w + hj * net) / den;
                if ((w > 0.0 && 0.0 > w_new) || (w < 0.0 && 0.0 < w_new)) {
                    w_new = 0.0; /* friction stops a joint; it never reverses it */
                }
            }
        }
        pos += 0.5 * (w + w_new) * h;
        w = w_new;
        /* thermal */
        t_ss = amb + i * i * r * rth;
        temp = t_ss + (temp - t_ss) * et;
    }
    s->velocity = w;
    s->current = i;
    s->position = pos;
    s->temperature = temp;
}

void sil_board_advance(sil_board_t *b, int64_t now)
{
    sil_board_state_t *s = &b->s;
    int64_t span = now - s->time, max_step = b->params.max_step_ns, full, rest;
    double tc = b->params.coulomb_friction;
    if (span <= 0) {
        return;
    }
    full = span / max_step; /* divmod of positive numbers */
    rest = span % max_step;
    if (!s->bridge_on && s->velocity == 0.0 && s->current == 0.0
        && (s->jammed || (-tc <= s->load_torque && s->load_torque <= tc))) {
        /* at rest and unpowered: only the winding temperature moves, toward ambient */
        double amb = s->ambient_temperature, temp = s->temperature, e, et;
        if (temp != amb) {
            if (full) {
                int64_t k;
                exps(b, (double)max_step * 1e-9, &e, &et);
                for (k = 0; k < full; k++) {
                    temp = amb + (temp - amb) * et;
                }
            }
            if (rest) {
                exps(b, (double)rest * 1e-9, &e, &et);
                temp = amb + (temp - amb) * et;
            }
            s->temperature = temp;
        }
    } else {
        if (full) {
            integrate(b, (double)max_step * 1e-9, full);
        }
        if (rest) {
            integrate(b, (double)rest * 1e-9, 1);
        }
    }
    s->time = now;
}

void sil_board_set_voltage(sil_board_t *b, double volts)
{
    double vs = b->s.supply_voltage;
    b->s.bridge_on = 1;
    b->s.voltage_cmd = volts > vs ? vs : (volts < -vs ? -vs : volts);
}

void sil_board_coast(sil_board_t *b)
{
    b->s.bridge_on = 0;
    b->s.voltage_cmd = 0.0;
}

int64_t sil_board_encoder_counts(const sil_board_t *b)
{
    return (int64_t)floor(b->s.position * b->counts_per_rad);
}

double sil_board_sensed_current(const sil_board_t *b)
{
    return b->s.current;
}

double sil_board_sensed_temperature(const sil_board_t *b)
{
    return b->s.temperature;
}

double sil_board_sensed_voltage(const sil_board_t *b)
{
    return b->s.supply_voltage;
}

/* --- the HAL: always these functions; each goes to the physics or to the caller's callbacks --------------- */
static void hal_advance(void *ctx, int64_t now)
{
    sil_board_t *b = (sil_board_t *)ctx;
    if (b->use_cb) {
        b->cb.advance(b->cb.ctx, now);
    } else {
        sil_board_advance(b, now);
    }
}

static void hal_set_voltage(void *ctx, double volts)
{
    sil_board_t *b = (sil_board_t *)ctx;
    if (b->use_cb) {
        b->cb.set_voltage(b->cb.ctx, volts);
    } else {
        sil_board_set_voltage(b, volts);
    }
}

static void hal_coast(void *ctx)
{
    sil_board_t *b = (sil_board_t *)ctx;
    if (b->use_cb) {
        b->cb.coast(b->cb.ctx);
    } else {
        sil_board_coast(b);
    }
}

static int64_t hal_encoder_counts(void *ctx)
{
    sil_board_t *b = (sil_board_t *)ctx;
    return b->use_cb ? b->cb.encoder_counts(b->cb.ctx) : sil_board_encoder_counts(b);
}

static double hal_sensed_current(void *ctx)
{
    sil_board_t *b = (sil_board_t *)ctx;
    return b->use_cb ? b->cb.sensed_current(b->cb.ctx) : sil_board_sensed_current(b);
}

static double hal_sensed_temperature(void *ctx)
{
    sil_board_t *b = (sil_board_t *)ctx;
    return b->use_cb ? b->cb.sensed_temperature(b->cb.ctx) : sil_board_sensed_temperature(b);
}

static double hal_sensed_voltage(void *ctx)
{
    sil_board_t *b = (sil_board_t *)ctx;
    return b->use_cb ? b->cb.sensed_voltage(b->cb.ctx) : sil_board_sensed_voltage(b);
}

const fw_hal_motor_t *sil_board_motor(sil_board_t *b)
{
    return &b->hal;
}

void sil_board_use_physics(sil_board_t *b)
{
    b->use_cb = 0;
}

void sil_board_use_callbacks(sil_board_t *b, const fw_hal_motor_t *cb)
{
    b->cb = *cb;
    b->use_cb = 1;
}

void sil_board_init(sil_board_t *b, const fw_motor_params_t *params, int64_t now, double position)
{
    const fw_motor_params_t *p;
    b->params = *params;
    p = &b->params;
    b->s.position = position;
    b->s.velocity = 0.0;
    b->s.current = 0.0;
    b->s.temperature = p->ambient_temperature;
    b->s.voltage_cmd = 0.0;
    b->s.bridge_on = 0;
    b->s.supply_voltage = p->supply_voltage;
    b->s.ambient_temperature = p->ambient_temperature;
    b->s.load_torque = 0.0;
    b->s.jammed = 0;
    b->s.time = now;
    b->j = fw_motor_output_inertia(p);
    b->kt_out = fw_motor_output_torque_constant(p);
    b->ke_m = p->torque_constant;
    b->n = p->gear_ratio;
    b->tau_e = p->inductance / p->resistance;
    b->counts_per_rad = fw_motor_counts_per_output_rad(p);
    b->cache_h = -1.0;
    b->cache_e = 0.0;
    b->cache_t = 0.0;
    b->hal.ctx = b;
    b->hal.params = &b->params;
    b->hal.advance = hal_advance;
    b->hal.set_voltage = hal_set_voltage;
    b->hal.coast = hal_coast;
    b->hal.encoder_counts = hal_encoder_counts;
    b->hal.sensed_current = hal_sensed_current;
    b->hal.sensed_temperature = hal_sensed_temperature;
    b->hal.sensed_voltage = hal_sensed_voltage;
    b->use_cb = 0;
}

const fw_motor_params_t *sil_board_params(const sil_board_t *b)
{
    return &b->params;
}

sil_board_state_t *sil_board_state(sil_board_t *b)
{
    return &b->s;
}

/* Size of the control core, for a binding that places one in its own memory. */
size_t sil_ctl_size(void)
{
    return sizeof(ctl_core_t);
}
