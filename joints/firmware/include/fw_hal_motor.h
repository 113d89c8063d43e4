/* fw_hal_motor.h - the motor HAL the control core drives: the surface of joints/actuator.py's Actuator that
 * joints/control.py's ControlCore uses.
 *
 * Theory of operation
 * -------------------
 * The control core sets a terminal voltage (or lets the bridge coast) and reads back an encoder count, a current
 * sense, a winding temperature and the supply voltage. Time comes in as an argument: `advance(now)` brings the
 * drive up to `now` (integer ns; on a real board it is a no-op, the world advances by itself; in the simulator it
 * integrates the physics with the voltage held since the last call). Every call takes the HAL's `ctx` first.
 *
 * The HAL also carries the actuator's parameters (fw_motor_params_t, the fields of ActuatorParams): the control
 * core derives its model constants (encoder scale, output torque constant and inertia, resistance for the
 * current loop's feed-forward) from them with the same arithmetic as ActuatorParams' properties, below.
 *
 * Implementations: joints/firmware/sil/sil_board.c (a C port of Actuator, or callbacks into a Python Actuator);
 * on a board, the PWM timer, the encoder counter and the ADC.
 */
#ifndef FW_HAL_MOTOR_H
#define FW_HAL_MOTOR_H

#include <stdint.h>

/* ActuatorParams (joints/actuator.py), field for field; units as there. */
typedef struct fw_motor_params {
    double supply_voltage;        /* V */
    double resistance;            /* ohm at 20 degC */
    double inductance;            /* H */
    double torque_constant;       /* N m/A at the motor shaft (= back-EMF constant) */
    double gear_ratio;            /* motor turns per output turn */
    double gear_efficiency;
    double rotor_inertia;         /* kg m^2, motor side */
    double load_inertia;          /* kg m^2, output side */
    double viscous_friction;      /* N m s/rad, output side */
    double coulomb_friction;      /* N m, output side */
    double hw_current_limit;      /* A */
    double ambient_temperature;   /* degC */
    double thermal_resistance;    /* K/W */
    double thermal_time_constant; /* s */
    int64_t encoder_counts_per_motor_rev;
    double current_noise;         /* A, 1 sigma (simulator only) */
    double temperature_noise;     /* K, 1 sigma (simulator only) */
    double voltage_noise;         /* V, 1 sigma (simulator only) */
    double encoder_noise_counts;  /* counts, 1 sigma (simulator only) */
    int64_t max_step_ns;          /* integration sub-step (simulator only) */
} fw_motor_params_t;

/* ActuatorParams' defaults. */
void fw_motor_params_default(fw_motor_params_t *p);
/* ActuatorParams.output_inertia: rotor_inertia * gear_ratio**2 + load_inertia. */
double fw_motor_output_inertia(const fw_motor_params_t *p);
/* ActuatorParams.output_torque_constant: torque_constant * gear_ratio * gear_efficiency. */
double fw_motor_output_torque_constant(const fw_motor_params_t *p);
/* ActuatorParams.counts_per_output_rad: encoder_counts_per_motor_rev * gear_ratio / (2 pi). */
double fw_motor_counts_per_output_rad(const fw_motor_params_t *p);

/* The drive, as the control core sees it. */
typedef struct fw_hal_motor {
    void *ctx;
    const fw_motor_params_t *params;
    void (*advance)(void *ctx, int64_t now);         /* bring the drive up to `now` (ns; never goes back) */
    void (*set_voltage)(void *ctx, double volts);    /* bridge on, hold this terminal voltage (clipped to supply) */
    void (*coast)(void *ctx);                        /* bridge off: no drive, no braking */
    int64_t (*encoder_counts)(void *ctx);            /* motor-side encoder count (multi-turn) */
    double (*sensed_current)(void *ctx);             /* A */
    double (*sensed_temperature)(void *ctx);         /* degC, winding */
    double (*sensed_voltage)(void *ctx);             /* V, supply */
} fw_hal_motor_t;

#endif /* FW_HAL_MOTOR_H */
