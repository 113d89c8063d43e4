/* fuzz_receive.c - libFuzzer harness of the firmware's receive path (clang -fsanitize=fuzzer,address,undefined).
 *
 * Theory of operation: the first input byte chooses the target.
 *   even: the frame layer alone - the rest is fed to a deframer one byte at a time; every item is a frame or one
 *         line-error kind, it equals fw_classify_chunk of the same chunk, and a valid frame re-encodes to wire
 *         bytes that decode to the same frame (the same bytes, or the canonical form one byte shorter when the
 *         input had a trailing COBS code byte); COBS decoding of the raw input never writes past n.
 *   odd:  a whole joint (fw_joint.h, on the simulator's C motor board), past its boot, driven by records:
 *           op & 3 == 0 or 1: (op >> 3) + 1 bytes into port UP (0) or DOWN (1), byte by byte when op & 4,
 *                             else as one block;
 *           op & 3 == 2:      time advances by (next byte + 1) units of 1 us to 100 ms ((op >> 2) & 7),
 *                             at most MAX_SPAN_NS per input (the rest of the input is then ignored);
 *           op & 3 == 3:      op == 0xFF reboots the joint; else drain at most (op >> 2) + 1 bytes of each port.
 *         After every record the joint's due timers run (a deadline that does not move on is a hang: abort), the
 *         output is drained (except after a partial drain) and checked: each port's output stream deframes into
 *         well-formed frames only (a reboot may cut one frame: the first item after it is not checked), and every
 *         queue, ring and buffer stays within its fixed size.
 * A failed check calls __builtin_trap(): libFuzzer reports it as a crash with the input that caused it.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "fw_frame.h"
#include "fw_joint.h"
#include "sil_board.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "fuzz_receive.c:%d: check failed: %s\n", __LINE__, #cond); \
            __builtin_trap();                                                        \
        }                                                                            \
    } while (0)

#define MAX_SPAN_NS (100LL * 1000 * 1000) /* simulated time per input */
#define MAX_TIMERS 200000                      /* timer calls per record before it counts as a hang */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------------------------------------------ the frame layer */
static void check_item(const fw_frame_t *f, const uint8_t *chunk, size_t n) {
    static fw_frame_t again;
    static uint8_t wire[FW_MAX_ENCODED];
    CHECK(f->line_error <= 8);
    if (n >= FW_MAX_ENCODED) return; /* OVERSIZE: the chunk was not kept */
    fw_classify_chunk(chunk, n, &again);
    CHECK(again.line_error == f->line_error);
    if (f->line_error) return;
    CHECK(f->kind <= FW_KIND_RESET_ACK);
    size_t m;
    if (f->kind == FW_KIND_DATA) {
        CHECK(f->packet.len <= FW_MAX_PAYLOAD);
        m = fw_encode_data(f->seq, f->flags, &f->packet, wire);
    } else {
        m = fw_encode_control(f->kind, f->seq, f->flags, wire);
    }
    /* COBS has more than one encoding of some chunks (a trailing code byte after a 254-byte run): the encoder's
       own is canonical, so compare the frames, not the bytes */
    CHECK(m >= 1 && m <= FW_MAX_ENCODED && wire[m - 1] == 0 && memchr(wire, 0, m - 1) == NULL);
    fw_classify_chunk(wire, m - 1, &again);
    CHECK(again.line_error == 0 && again.kind == f->kind && again.seq == f->seq && again.flags == f->flags);
    if (f->kind == FW_KIND_DATA) {
        const fw_packet_t *a = &again.packet, *b = &f->packet;
        CHECK(a->src == b->src && a->dst == b->dst && a->type == b->type && a->ttl == b->ttl);
        CHECK(a->msg_id == b->msg_id && a->len == b->len && memcmp(a->payload, b->payload, a->len) == 0);
    }
    if (m != n + 1 || memcmp(wire, chunk, n) != 0) CHECK(n == m); /* only the one-byte-longer form differs */
}

static void fuzz_frames(const uint8_t *data, size_t size) {
    static fw_deframer_t d;
    static fw_frame_t f;
    static uint8_t decoded[1 << 16];
    fw_deframer_init(&d);
    size_t start = 0;
    for (size_t k = 0; k < size; k++) {
        if (fw_deframer_byte(&d, data[k], &f)) {
            if (data[k] == 0) {
                check_item(&f, data + start, k - start);
            } else {
                CHECK(f.line_error != 0); /* only OVERSIZE completes an item before a delimiter */
            }
        }
        CHECK(d.len <= FW_MAX_CHUNK);
        if (data[k] == 0) start = k + 1;
    }
    /* COBS alone on the raw bytes: the decoded length never exceeds the input */
    size_t n = size < sizeof decoded ? size : sizeof decoded;
    int got = fw_cobs_decode(data, n, decoded);
    CHECK(got >= -1 && got <= (int)n);
}

/* ------------------------------------------------------------------------------------------------ the joint */
static fw_joint_t joint;
static sil_board_t *board;
static union { double d; int64_t i; void *p; uint8_t bytes[8192]; } board_mem; /* aligned */
static fw_deframer_t out_check[2];
static bool out_resync[2];
static fw_frame_t out_frame;
static uint8_t out_buf[4096];

static uint8_t nonce(void *ctx, uint8_t port, uint32_t boots) {
    (void)ctx;
    return (uint8_t)(0x5A ^ (port * 31) ^ boots);
}

static void check_bounds(void) {
    for (int p = 0; p < 2; p++) {
        const fw_link_t *l = &joint.links[p];
        CHECK(l->q_len <= FW_LINK_QUEUE_MAX && l->q_head < FW_LINK_QUEUE_MAX);
        CHECK(l->u_len <= FW_LINK_URGENT_MAX);
        CHECK(l->ev_len <= FW_LINK_EVENTS && l->ev_head < FW_LINK_EVENTS);
        CHECK(l->out_len <= FW_LINK_OUT_SIZE);
        /* every packet slot in use is accounted for: queued, in flight, or kept by a FAILED event; none run out */
        unsigned used = 0, held = l->q_len + l->u_len + (l->has_inflight ? 1u : 0u);
        for (unsigned s = 0; s < FW_LINK_SLOTS; s++) used += (l->busy >> s) & 1u;
        for (uint16_t k = 0; k < l->ev_len; k++) {
            const fw_link_event_t *ev = &l->events[(l->ev_head + k) % FW_LINK_EVENTS];
            held += ev->kind == FW_EV_FAILED && ev->slot != FW_LINK_NO_SLOT;
        }
        CHECK(used == held && l->slot_refused == 0 && l->ev_overflow == 0);
        CHECK(l->deframer.len <= FW_MAX_CHUNK);
        CHECK(l->state <= 2);
    }
    CHECK(joint.router.b_len <= FW_REPORT_BACKLOG);
    CHECK(joint.result_len <= FW_RESULTS_KEPT && joint.result_head < FW_RESULTS_KEPT);
}

static void run_timers(int64_t now) {
    int64_t last = INT64_MIN;
    int same = 0;
    for (int k = 0;; k++) {
        int64_t t = fw_joint_next_deadline(&joint);
        if (t > now) return;
        CHECK(k < MAX_TIMERS);
        same = t == last ? same + 1 : 0;
        CHECK(same < 64); /* a deadline that handling does not move: a hang */
        last = t;
        fw_joint_handle_timer(&joint, t);
    }
}

static void check_output(unsigned port, const uint8_t *bytes, uint32_t n) {
    for (uint32_t k = 0; k < n; k++) {
        if (fw_deframer_byte(&out_check[port], bytes[k], &out_frame)) {
            if (out_resync[port]) {
                out_resync[port] = false;
                continue;
            }
            CHECK(out_frame.line_error == 0);
        }
    }
}

static void drain(int64_t now, uint32_t cap) {
    for (unsigned port = 0; port < 2; port++) {
        for (;;) {
            uint32_t n = fw_joint_tx(&joint, port, now, out_buf, cap);
            CHECK(n <= cap);
            check_output(port, out_buf, n);
            if (n < cap || cap < sizeof out_buf) break;
        }
    }
}

/* The joint just past its boot, made once and copied back for every input (the joint and its board are statics at
 * fixed addresses, so the pointers inside the copy stay valid). */
static fw_joint_t joint_booted;
static union { double d; int64_t i; void *p; uint8_t bytes[8192]; } board_booted;
static int64_t booted_at = -1;

static void boot_once(void) {
    fw_joint_config_t config;
    fw_motor_params_t params;
    CHECK(sil_board_size() <= sizeof board_mem);
    board = (sil_board_t *)board_mem.bytes;
    fw_motor_params_default(&params);
    sil_board_init(board, &params, 0, 0.0);
    fw_joint_config_default(&config, 0x0101, 0x1001);
    fw_hal_t hal = {0, nonce};
    fw_joint_init(&joint, &config, &hal, sil_board_motor(board), 0);
    booted_at = config.boot_ns + 1000;
    run_timers(booted_at);
    for (int p = 0; p < 2; p++) fw_deframer_init(&out_check[p]);
    drain(booted_at, sizeof out_buf);
    memcpy(&joint_booted, &joint, sizeof joint);
    memcpy(&board_booted, &board_mem, sizeof board_mem);
}

static void fuzz_joint(const uint8_t *data, size_t size) {
    static const int64_t units[8] = {1000, 10000, 100000, 1000000, 1000000, 10000000, 10000000, 100000000};
    if (booted_at < 0) boot_once();
    memcpy(&joint, &joint_booted, sizeof joint);
    memcpy(&board_mem, &board_booted, sizeof board_mem);
    for (int p = 0; p < 2; p++) {
        fw_deframer_init(&out_check[p]);
        out_resync[p] = false; /* the boot's output was drained whole */
    }
    int64_t now = booted_at;
    size_t k = 0;
    while (k < size) {
        uint8_t op = data[k++];
        uint32_t cap = sizeof out_buf;
        switch (op & 3) {
        case 0:
        case 1: {
            unsigned port = op & 1;
            size_t n = (size_t)(op >> 3) + 1;
            if (n > size - k) n = size - k;
            if (op & 4) {
                for (size_t b = 0; b < n; b++) fw_joint_rx_byte(&joint, port, data[k + b], now);
            } else {
                fw_joint_rx_block(&joint, port, data + k, (uint32_t)n, now);
            }
            k += n;
            break;
        }
        case 2: {
            int64_t step = (int64_t)((k < size ? data[k++] : 0) + 1) * units[(op >> 2) & 7];
            if (now + step > MAX_SPAN_NS) return;
            now += step;
            break;
        }
        default:
            if (op == 0xFF) {
                fw_joint_reboot(&joint, now);
                out_resync[0] = out_resync[1] = true;
            } else {
                cap = (uint32_t)(op >> 2) + 1;
            }
            break;
        }
        run_timers(now);
        drain(now, cap);
        check_bounds();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    if (data[0] & 1) {
        fuzz_joint(data + 1, size - 1);
    } else {
        fuzz_frames(data + 1, size - 1);
    }
    return 0;
}
