/* A stub board for the Cortex-M0+ cross-build (tools/fwsize.py): it exists only to give the linker a `main` and
 * the HAL symbols, so that the size of the firmware proper can be measured after dead-code removal. It is not a
 * working board: the "peripherals" are volatile variables that a real port replaces with its UART, timer, PWM,
 * encoder and ADC registers (docs/porting-firmware.md says what goes where).
 *
 * Layout of a real port, as sketched here: core 0 runs the UART receive interrupts (fw_joint_rx_byte), the link
 * timers and the transmit drain; core 1 runs the control tick (the control core's timer); the e-stop reaches core 1
 * through the inter-core doorbell. On one core, as here, one loop does both. */
#include <stdint.h>

#include "fw_joint.h"

/* stand-ins for peripheral registers */
static volatile uint32_t uart_rx_ready[2], uart_rx_data[2], uart_tx_data[2];
static volatile uint32_t timer_ns_lo, timer_ns_hi, trng;
static volatile int32_t encoder_count, pwm_duty;
static volatile uint16_t adc_current, adc_temperature, adc_supply;

static fw_joint_t joint; /* the one joint of a board */
static fw_motor_params_t motor_params;

static int64_t now_ns(void) { return (int64_t)(((uint64_t)timer_ns_hi << 32) | timer_ns_lo); }

static uint8_t hal_nonce(void *ctx, uint8_t port, uint32_t boots) {
    (void)ctx;
    return (uint8_t)(trng ^ port ^ boots);
}

static void motor_advance(void *ctx, int64_t now) { (void)ctx; (void)now; }
static void motor_set_voltage(void *ctx, double volts) { (void)ctx; pwm_duty = (int32_t)(volts * 1000.0); }
static void motor_coast(void *ctx) { (void)ctx; pwm_duty = 0; }
static int64_t motor_encoder(void *ctx) { (void)ctx; return encoder_count; }
static double motor_current(void *ctx) { (void)ctx; return adc_current * (1.0 / 1000.0); }
static double motor_temperature(void *ctx) { (void)ctx; return adc_temperature * (1.0 / 100.0); }
static double motor_voltage(void *ctx) { (void)ctx; return adc_supply * (1.0 / 1000.0); }

int main(void) {
    static const fw_hal_t hal = {0, hal_nonce};
    fw_hal_motor_t motor = {0, &motor_params, motor_advance, motor_set_voltage, motor_coast, motor_encoder,
                            motor_current, motor_temperature, motor_voltage};
    fw_joint_config_t config;
    uint8_t out[64];
    fw_motor_params_default(&motor_params);
    fw_joint_config_default(&config, 0x0101, 0x1001);
    fw_joint_init(&joint, &config, &hal, &motor, now_ns());
    for (;;) {
        for (unsigned port = 0; port < 2; port++) {
            if (uart_rx_ready[port]) fw_joint_rx_byte(&joint, port, (uint8_t)uart_rx_data[port], now_ns());
        }
        if (now_ns() >= fw_joint_next_deadline(&joint)) fw_joint_handle_timer(&joint, now_ns());
        for (unsigned port = 0; port < 2; port++) {
            uint32_t n = fw_joint_tx(&joint, port, now_ns(), out, sizeof out);
            for (uint32_t k = 0; k < n; k++) uart_tx_data[port] = out[k];
        }
    }
}
