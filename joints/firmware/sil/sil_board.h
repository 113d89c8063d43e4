/* sil_board.h - the simulator's side of the motor HAL (fw_hal_motor.h): the physics of joints/actuator.py in C,
 * or callbacks into a Python Actuator.
 *
 * Theory of operation
 * -------------------
 * A sil_board_t is one actuator: parameters, the state Actuator keeps (sil_board_state_t, first in the struct so
 * a binding can read and change it in place: fault injection writes supply_voltage, ambient_temperature,
 * load_torque, jammed, temperature between two advances, as hil/joint_faults.py does on an Actuator) and the HAL
 * the firmware is given (sil_board_motor).
 *
 * Physics mode (the default after sil_board_init): sil_board_advance/_set_voltage/_coast/_encoder_counts/
 * _sensed_* are Actuator.advance/set_voltage/coast/encoder_counts/sensed_* with the same arithmetic in the same
 * order on doubles, so positions, currents and temperatures equal the Python's bit for bit. The sensors are
 * noise-free (the Python Actuator's noise needs its random.Random stream: use the callback mode for noise).
 *
 * Callback mode (sil_board_use_callbacks): the HAL forwards every call to the caller's functions and ctx, e.g.
 * ctypes callbacks into a Python Actuator with seeded noise and injected faults; the parameters stay the board's.
 * The HAL the firmware holds never changes (it forwards by mode), so the mode may be switched at any time.
 */
#ifndef SIL_BOARD_H
#define SIL_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include "fw_hal_motor.h"

/* Actuator's state fields (joints/actuator.py), in this order (hil/firmware/cboard.py mirrors it). */
typedef struct sil_board_state {
    double position;            /* rad, output */
    double velocity;            /* rad/s, output */
    double current;             /* A */
    double temperature;         /* degC, winding */
    double voltage_cmd;         /* V, as requested */
    double supply_voltage;      /* V (fault injection: a sagging supply) */
    double ambient_temperature; /* degC (fault injection) */
    double load_torque;         /* N m on the output (fault injection) */
    int64_t time;               /* ns, the instant the state refers to */
    int32_t bridge_on;          /* 0: the bridge is off and the motor coasts */
    int32_t jammed;             /* a locked output (fault injection) */
} sil_board_state_t;

typedef struct sil_board {
    sil_board_state_t s;
    fw_motor_params_t params;
    fw_hal_motor_t hal;         /* what the firmware is given: forwards to the physics or to `cb` */
    fw_hal_motor_t cb;          /* the caller's callbacks (callback mode) */
    int32_t use_cb;
    /* integration constants, computed once (Actuator.__init__) */
    double j, kt_out, ke_m, n, tau_e, counts_per_rad;
    double cache_h, cache_e, cache_t;
} sil_board_t;

size_t sil_board_size(void);
/* sizeof(ctl_core_t): a binding places a control core in its own memory. */
size_t sil_ctl_size(void);
/* Actuator(params, seed=None, now, position). */
void sil_board_init(sil_board_t *b, const fw_motor_params_t *params, int64_t now, double position);
/* The HAL to give the firmware (physics or callbacks, whichever mode the board is in). */
const fw_hal_motor_t *sil_board_motor(sil_board_t *b);
/* Callback mode: the HAL forwards to `cb`'s functions and ctx (its params pointer is ignored). */
void sil_board_use_callbacks(sil_board_t *b, const fw_hal_motor_t *cb);
/* Physics mode again (the state kept as it is). */
void sil_board_use_physics(sil_board_t *b);
sil_board_state_t *sil_board_state(sil_board_t *b);
const fw_motor_params_t *sil_board_params(const sil_board_t *b);

/* The physics (Actuator's methods). */
void sil_board_advance(sil_board_t *b, int64_t now);
void sil_board_set_voltage(sil_board_t *b, double volts);
void sil_board_coast(sil_board_t *b);
int64_t sil_board_encoder_counts(const sil_board_t *b);
double sil_board_sensed_current(const sil_board_t *b);
double sil_board_sensed_temperature(const sil_board_t *b);
double sil_board_sensed_voltage(const sil_board_t *b);

#endif /* SIL_BOARD_H */
