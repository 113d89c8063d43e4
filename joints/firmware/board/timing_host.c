/* timing_host.c - what the firmware's paths cost, measured on the build machine (python -m
 * armbus.tools.firmware.timing compiles and runs it; docs/porting-firmware.md, "Timing budgets").
 *
 * One joint on the simulator's C motor board, past its boot, its UP link opened by a RESET. Then FRAMES PING
 * requests arrive on UP one byte at a time, as a UART receive interrupt delivers them; after each one the joint's
 * output is drained and its DATA frames acked, as the host would. Measured with the monotonic clock:
 *   - a byte that is not a delimiter (the mean of all of them: one fw_joint_rx_byte call each);
 *   - the delimiter of a PING (the frame's whole handling: COBS, CRC, link, ack, routing, handler, reply queued);
 *   - the control tick with torque on, holding position (fw_joint_handle_timer at each 1 kHz deadline).
 * Prints one line per path: "name mean_ns median_ns p99_ns max_ns count" (the maximum is the host's scheduler
 * more than the code). Host figures: a Cortex-M0+ at 125 MHz without an FPU is much slower; the control tick here
 * includes the simulated motor's physics, which a board does not run.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fw_frame.h"
#include "fw_joint.h"
#include "sil_board.h"

#define FRAMES 20000
#define TICKS 20000

static fw_joint_t joint;
static union { double d; int64_t i; uint8_t bytes[8192]; } board_mem;
static int64_t samples[FRAMES * 16];

static int64_t clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint8_t nonce(void *ctx, uint8_t port, uint32_t boots) {
    (void)ctx;
    return (uint8_t)(0x21 + port + boots);
}

static int cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, int64_t *v, size_t n) {
    double sum = 0;
    for (size_t k = 0; k < n; k++) sum += (double)v[k];
    qsort(v, n, sizeof v[0], cmp);
    printf("%s %.0f %lld %lld %lld %zu\n", name, sum / (double)n, (long long)v[n / 2], (long long)v[n * 99 / 100],
           (long long)v[n - 1], n);
}

static void run_timers(int64_t now) {
    while (fw_joint_next_deadline(&joint) <= now) fw_joint_handle_timer(&joint, fw_joint_next_deadline(&joint));
}

/* drain both ports; ack every DATA frame from UP as the host would */
static void drain_and_ack(int64_t now) {
    static fw_deframer_t host;
    static fw_frame_t f;
    static int ready;
    uint8_t out[512], ack[16];
    if (!ready) {
        fw_deframer_init(&host);
        ready = 1;
    }
    for (unsigned port = 0; port < 2; port++) {
        uint32_t n;
        while ((n = fw_joint_tx(&joint, port, now, out, sizeof out)) > 0) {
            if (port != 0) continue;
            for (uint32_t k = 0; k < n; k++) {
                if (fw_deframer_byte(&host, out[k], &f) && f.line_error == 0 && f.kind == FW_KIND_DATA) {
                    size_t m = fw_encode_control(FW_KIND_ACK, f.seq, 0, ack);
                    fw_joint_rx_block(&joint, 0, ack, (uint32_t)m, now);
                }
            }
        }
    }
}

int main(void) {
    fw_joint_config_t config;
    fw_motor_params_t params;
    sil_board_t *board = (sil_board_t *)board_mem.bytes;
    if (sil_board_size() > sizeof board_mem) return 2;
    fw_motor_params_default(&params);
    sil_board_init(board, &params, 0, 0.0);
    fw_joint_config_default(&config, 0x0101, 0x1001);
    fw_hal_t hal = {0, nonce};
    fw_joint_init(&joint, &config, &hal, sil_board_motor(board), 0);
    int64_t now = config.boot_ns + 1000;
    run_timers(now);
    drain_and_ack(now);
    uint8_t wire[FW_MAX_ENCODED];
    size_t n = fw_encode_control(FW_KIND_RESET, 0x42, 0, wire);
    fw_joint_rx_block(&joint, 0, wire, (uint32_t)n, now);
    now += 1000000;
    run_timers(now);
    drain_and_ack(now);

    size_t nbytes = 0, nframes = 0;
    static int64_t ends[FRAMES];
    fw_packet_t ping = {0, 0xFE, FW_MSG_PING, 32, 0, 0, {0}};
    for (int k = 0; k < FRAMES; k++) {
        ping.msg_id = (uint16_t)(k + 1);
        n = fw_encode_data((uint8_t)k, 0, &ping, wire);
        for (size_t b = 0; b < n; b++) {
            int64_t t0 = clock_ns();
            fw_joint_rx_byte(&joint, 0, wire[b], now);
            int64_t dt = clock_ns() - t0;
            if (b + 1 < n) {
                samples[nbytes++] = dt;
            } else {
                ends[nframes++] = dt;
            }
        }
        now += 200000; /* 0.2 ms between requests */
        run_timers(now);
        drain_and_ack(now);
    }
    if (joint.counters.handled < FRAMES) {
        fprintf(stderr, "only %u of %d PINGs were handled\n", (unsigned)joint.counters.handled, FRAMES);
        return 1;
    }
    report("byte", samples, nbytes);
    report("frame_end", ends, nframes);

    ctl_command_t torque = {FW_CMD_TORQUE, 1, 0};
    if (!ctl_command(&joint.control, &torque)) return 1;
    static int64_t ticks[TICKS];
    size_t nticks = 0;
    while (nticks < TICKS) {
        int64_t t = fw_joint_next_deadline(&joint);
        int64_t t0 = clock_ns();
        fw_joint_handle_timer(&joint, t);
        ticks[nticks++] = clock_ns() - t0;
        drain_and_ack(t);
    }
    if (!ctl_torque(&joint.control)) {
        fprintf(stderr, "torque did not come on\n");
        return 1;
    }
    report("control_tick", ticks, nticks);
    return 0;
}
