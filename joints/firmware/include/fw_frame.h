/* Frames: CRC-16/CCITT-FALSE, COBS, the frame codec and the streaming deframer (bus/crc.py, bus/codec.py,
 * bus/deframer.py).
 *
 * Theory of operation: a frame is a link header, for DATA frames a network header and payload, and a CRC-16
 * (big-endian), COBS-encoded and followed by one 0x00. fw_encode_data / fw_encode_control produce wire bytes;
 * fw_classify_chunk checks one delimiter-free chunk in the protocol's fixed order (OVERSIZE, COBS, TRUNCATED, CRC,
 * VERSION, KIND, then TRUNCATED, TYPE, LENGTH) and gives a frame or one line-error kind. The deframer takes bytes
 * one at a time (fw_deframer_byte: the shape of a UART receive interrupt) and reports a completed item at each
 * delimiter, or an OVERSIZE error at the byte that made a chunk too long, whatever the chunking: a block is its
 * bytes in order. Memory is fixed: one chunk buffer of FW_MAX_ENCODED - 1 bytes.
 */
#ifndef FW_FRAME_H
#define FW_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fw_wire_gen.h"

#define FW_MAX_CHUNK (FW_MAX_ENCODED - 1)

/* A network-layer packet (bus/codec.py Packet). */
typedef struct fw_packet {
    uint8_t src;
    uint8_t dst;
    uint8_t type;
    uint8_t ttl;
    uint16_t msg_id;
    uint16_t len;
    uint8_t payload[FW_MAX_PAYLOAD];
} fw_packet_t;

/* One decoded item: a frame (line_error 0) or a line error (its LineErrorKind). */
typedef struct fw_frame {
    uint8_t line_error;
    uint8_t kind;
    uint8_t seq;
    uint8_t flags;
    fw_packet_t packet; /* DATA frames only */
} fw_frame_t;

typedef struct fw_deframer_counters {
    uint32_t frames;
    uint32_t bytes;
    uint32_t errors[9]; /* indexed by LineErrorKind (1..8) */
} fw_deframer_counters_t;

typedef struct fw_deframer {
    uint8_t buf[FW_MAX_CHUNK];
    uint16_t len;
    bool discarding;
    fw_deframer_counters_t counters;
} fw_deframer_t;

uint16_t fw_crc16(const uint8_t *data, size_t n, uint16_t crc);
#define FW_CRC16_INIT 0xFFFFu
/* COBS as the Python `cobs` package does it. encode returns the output length (out holds n + n/254 + 1);
 * decode returns the decoded length or -1 for invalid COBS. */
size_t fw_cobs_encode(const uint8_t *in, size_t n, uint8_t *out);
int fw_cobs_decode(const uint8_t *in, size_t n, uint8_t *out);
/* Wire bytes, delimiter included, into out (FW_MAX_ENCODED bytes); returns the length. */
size_t fw_encode_data(uint8_t seq, uint8_t flags, const fw_packet_t *p, uint8_t *out);
size_t fw_encode_control(uint8_t kind, uint8_t seq, uint8_t flags, uint8_t *out);
/* Decode one delimiter-free chunk into *f (never fails: a line error is an item too). */
void fw_classify_chunk(const uint8_t *chunk, size_t n, fw_frame_t *f);

void fw_deframer_init(fw_deframer_t *d);
/* One byte; true when it completed an item (written to *f). */
bool fw_deframer_byte(fw_deframer_t *d, uint8_t byte, fw_frame_t *f);

#endif
