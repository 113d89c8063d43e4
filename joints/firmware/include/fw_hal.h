/* The comm core's hardware abstraction: what the joint firmware needs from the board besides its two UARTs.
 *
 * Theory of operation: the comm core is sans-I/O like the Python model. Time comes in as an argument (integer ns
 * of a free-running timer) on every entry point; received bytes come in through fw_joint_rx_byte (the UART
 * receive interrupt) or fw_joint_rx_block (a DMA block; same result for any chunking); bytes to send are drained
 * from per-port transmit buffers with fw_joint_tx (the UART transmit interrupt or DMA). What remains is here:
 *
 *  - nonce: one random byte per link session start after boot (the first RESET's nonce). A board reads its
 *    hardware RNG; the software-in-the-loop host passes the Python model's seeded stream, so that the C joint's
 *    RESET frames match the Python joint's byte for byte.
 *  - the e-stop doorbell: on the dual-core controller an ESTOP reaches the control core as an inter-core
 *    interrupt; in this firmware it is the direct call ctl_estop() (fw_control.h), made before the ESTOP is
 *    forwarded, so it needs no entry here.
 *  - the motor side (fw_hal_motor.h, owned by the control core) is passed through to ctl_init.
 */
#ifndef FW_HAL_H
#define FW_HAL_H

#include <stdint.h>

typedef struct fw_hal {
    void *ctx;
    /* A random byte for link `port`'s first RESET nonce in boot number `boots` (0 at power-up). */
    uint8_t (*nonce)(void *ctx, uint8_t port, uint32_t boots);
} fw_hal_t;

#endif
