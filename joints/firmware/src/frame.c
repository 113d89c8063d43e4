/* CRC-16, COBS, the frame codec and the deframer: see include/fw_frame.h. */
#include "fw_frame.h"

#include <string.h>

uint16_t fw_crc16(const uint8_t *data, size_t n, uint16_t crc) {
    for (size_t i = 0; i < n; i++) {
        unsigned c = crc ^ ((unsigned)data[i] << 8);
        for (int b = 0; b < 8; b++) {
            c = (c & 0x8000u) ? ((c << 1) ^ 0x1021u) : (c << 1);
        }
        crc = (uint16_t)(c & 0xFFFFu);
    }
    return crc;
}

size_t fw_cobs_encode(const uint8_t *in, size_t n, uint8_t *out) {
    /* the Python cobs package's algorithm, including its end rule: no final code byte after a full block
       that ends the input */
    size_t o = 0, start = 0;
    bool final_zero = true;
    for (size_t idx = 0; idx < n; idx++) {
        if (in[idx] == 0) {
            final_zero = true;
            out[o++] = (uint8_t)(idx - start + 1);
            memcpy(&out[o], &in[start], idx - start);
            o += idx - start;
            start = idx + 1;
        } else if (idx - start == 0xFD) {
            final_zero = false;
            out[o++] = 0xFF;
            memcpy(&out[o], &in[start], idx + 1 - start);
            o += idx + 1 - start;
            start = idx + 1;
        }
    }
    if (n != start || final_zero) {
        out[o++] = (uint8_t)(n - start + 1);
        memcpy(&out[o], &in[start], n - start);
        o += n - start;
    }
    return o;
}

int fw_cobs_decode(const uint8_t *in, size_t n, uint8_t *out) {
    size_t idx = 0, o = 0;
    if (n == 0) return 0;
    for (;;) {
        unsigned length = in[idx];
        if (length == 0) return -1;
        idx++;
        size_t end = idx + length - 1;
        size_t stop = end < n ? end : n;
        for (size_t k = idx; k < stop; k++) {
            if (in[k] == 0) return -1;
            out[o++] = in[k];
        }
        idx = end;
        if (idx > n) return -1;
        if (idx < n) {
            if (length < 0xFF) out[o++] = 0;
        } else {
            break;
        }
    }
    return (int)o;
}

static size_t finish(uint8_t *body, size_t n, uint8_t *out) {
    uint16_t crc = fw_crc16(body, n, FW_CRC16_INIT);
    body[n] = (uint8_t)(crc >> 8);
    body[n + 1] = (uint8_t)crc;
    size_t m = fw_cobs_encode(body, n + 2, out);
    out[m] = 0;
    return m + 1;
}

size_t fw_encode_data(uint8_t seq, uint8_t flags, const fw_packet_t *p, uint8_t *out) {
    uint8_t body[FW_MAX_FRAME];
    body[0] = (uint8_t)(FW_PROTOCOL_VERSION << 4 | FW_KIND_DATA);
    body[1] = seq;
    body[2] = flags;
    body[3] = p->src;
    body[4] = p->dst;
    body[5] = p->type;
    body[6] = (uint8_t)p->msg_id;
    body[7] = (uint8_t)(p->msg_id >> 8);
    body[8] = p->ttl;
    body[9] = (uint8_t)p->len;
    memcpy(&body[10], p->payload, p->len);
    return finish(body, 10u + p->len, out);
}

size_t fw_encode_control(uint8_t kind, uint8_t seq, uint8_t flags, uint8_t *out) {
    uint8_t body[FW_CONTROL_FRAME_SIZE];
    body[0] = (uint8_t)(FW_PROTOCOL_VERSION << 4 | kind);
    body[1] = seq;
    body[2] = flags;
    return finish(body, 3, out);
}

static void line_error(fw_frame_t *f, uint8_t kind) {
    f->line_error = kind;
}

void fw_classify_chunk(const uint8_t *chunk, size_t n, fw_frame_t *f) {
    uint8_t raw[FW_MAX_CHUNK];
    f->line_error = 0;
    if (n > FW_MAX_CHUNK) {
        line_error(f, FW_LINE_OVERSIZE);
        return;
    }
    int m = fw_cobs_decode(chunk, n, raw);
    if (m < 0) {
        line_error(f, FW_LINE_COBS);
        return;
    }
    if (m < FW_CONTROL_FRAME_SIZE) {
        line_error(f, FW_LINE_TRUNCATED);
        return;
    }
    if (fw_crc16(raw, (size_t)m, FW_CRC16_INIT) != 0) {
        line_error(f, FW_LINE_CRC);
        return;
    }
    if (raw[0] >> 4 != FW_PROTOCOL_VERSION) {
        line_error(f, FW_LINE_VERSION);
        return;
    }
    uint8_t kind = raw[0] & 0x0F;
    if (kind > FW_KIND_RESET_ACK) {
        line_error(f, FW_LINE_KIND);
        return;
    }
    f->kind = kind;
    f->seq = raw[1];
    f->flags = raw[2];
    if (kind == FW_KIND_DATA) {
        if (m < FW_DATA_OVERHEAD) {
            line_error(f, FW_LINE_TRUNCATED);
            return;
        }
        if (!fw_known_type(raw[5])) {
            line_error(f, FW_LINE_TYPE);
            return;
        }
        if (raw[9] != m - FW_DATA_OVERHEAD) {
            line_error(f, FW_LINE_LENGTH);
            return;
        }
        fw_packet_t *p = &f->packet;
        p->src = raw[3];
        p->dst = raw[4];
        p->type = raw[5];
        p->msg_id = (uint16_t)(raw[6] | raw[7] << 8);
        p->ttl = raw[8];
        p->len = raw[9];
        memcpy(p->payload, &raw[10], p->len);
        return;
    }
    if (m != FW_CONTROL_FRAME_SIZE) line_error(f, FW_LINE_LENGTH);
}

void fw_deframer_init(fw_deframer_t *d) {
    d->len = 0;
    d->discarding = false;
    memset(&d->counters, 0, sizeof d->counters);
}

bool fw_deframer_byte(fw_deframer_t *d, uint8_t byte, fw_frame_t *f) {
    d->counters.bytes++;
    if (byte != 0) {
        if (d->discarding) return false;
        if (d->len >= FW_MAX_CHUNK) {
            d->len = 0;
            d->discarding = true;
            d->counters.errors[FW_LINE_OVERSIZE]++;
            f->line_error = FW_LINE_OVERSIZE;
            return true;
        }
        d->buf[d->len++] = byte;
        return false;
    }
    if (d->discarding) {
        d->discarding = false;
        return false;
    }
    if (d->len == 0) return false; /* idle fill */
    fw_classify_chunk(d->buf, d->len, f);
    d->len = 0;
    if (f->line_error) {
        d->counters.errors[f->line_error]++;
    } else {
        d->counters.frames++;
    }
    return true;
}
