/* CRC, COBS, the codec and the deframer against the wire test vectors (docs/test-vectors.json, decoded by the
 * Python codec into tests/test_vectors_gen.h): every vector whole, byte by byte, and with its encoding re-made. */
#include <string.h>

#include "fw_frame.h"
#include "test_util.h"
#include "test_vectors_gen.h"

static void check_item(const test_vector_t *v, const fw_frame_t *f) {
    if (f->line_error != v->line_error) {
        fprintf(stderr, "%s: line error %u, expected %u\n", v->name, f->line_error, v->line_error);
        test_failures++;
        return;
    }
    if (v->line_error) return;
    CHECK(f->kind == v->kind && f->seq == v->seq && f->flags == v->flags);
    if (v->kind == FW_KIND_DATA) {
        const fw_packet_t *p = &f->packet;
        CHECK(p->src == v->src && p->dst == v->dst && p->type == v->type && p->ttl == v->ttl);
        CHECK(p->msg_id == v->msg_id && p->len == v->payload_len);
        CHECK(memcmp(p->payload, v->payload, v->payload_len) == 0);
    }
}

static void test_crc_and_cobs(void) {
    CHECK(fw_crc16((const uint8_t *)"123456789", 9, FW_CRC16_INIT) == 0x29B1);
    uint8_t run[300], enc[310], dec[310];
    for (int n = 0; n < 300; n++) run[n] = (uint8_t)(n % 255 + 1);
    for (size_t n = 0; n <= 300; n += 1) {
        size_t m = fw_cobs_encode(run, n, enc);
        CHECK(memchr(enc, 0, m) == NULL);
        CHECK(fw_cobs_decode(enc, m, dec) == (int)n && memcmp(dec, run, n) == 0);
    }
    uint8_t bad[] = {0x05, 0x01};
    CHECK(fw_cobs_decode(bad, sizeof bad, dec) == -1);
    CHECK(fw_cobs_decode((const uint8_t *)"", 0, dec) == 0);
}

static void test_vectors_whole_and_bytewise(void) {
    for (int k = 0; k < TEST_VECTOR_COUNT; k++) {
        const test_vector_t *v = &test_vectors[k];
        fw_frame_t f;
        size_t n = v->wire_len;
        if (n && v->wire[n - 1] == 0) n--;
        fw_classify_chunk(v->wire, n, &f);
        check_item(v, &f);
        /* streamed: the same item at the delimiter, once */
        fw_deframer_t d;
        fw_deframer_init(&d);
        int items = 0;
        for (uint16_t i = 0; i < v->wire_len; i++) {
            if (fw_deframer_byte(&d, v->wire[i], &f)) {
                items++;
                if (v->line_error != FW_LINE_OVERSIZE || f.line_error == FW_LINE_OVERSIZE) check_item(v, &f);
            }
        }
        CHECK(items >= 1);
        /* re-encoding a valid frame gives the vector's bytes (when they are the canonical encoding) */
        if (!v->line_error && v->canonical) {
            uint8_t out[FW_MAX_ENCODED];
            size_t m;
            if (v->kind == FW_KIND_DATA) {
                fw_classify_chunk(v->wire, n, &f);
                m = fw_encode_data(v->seq, v->flags, &f.packet, out);
            } else {
                m = fw_encode_control(v->kind, v->seq, v->flags, out);
            }
            if (m != v->wire_len || memcmp(out, v->wire, m) != 0) {
                fprintf(stderr, "%s: re-encoding differs\n", v->name);
                test_failures++;
            }
        }
    }
}

static void test_oversize_and_resync(void) {
    fw_deframer_t d;
    fw_deframer_init(&d);
    fw_frame_t f;
    int errors = 0;
    for (int i = 0; i < 600; i++) {
        if (fw_deframer_byte(&d, 0x41, &f)) {
            errors++;
            CHECK(f.line_error == FW_LINE_OVERSIZE && i == FW_MAX_CHUNK);
        }
    }
    CHECK(errors == 1);
    CHECK(!fw_deframer_byte(&d, 0, &f)); /* the rest of the oversize chunk: already reported */
    uint8_t ack[FW_CONTROL_WIRE_SIZE];
    size_t m = fw_encode_control(FW_KIND_ACK, 9, 0, ack);
    bool got = false;
    for (size_t i = 0; i < m; i++) got = fw_deframer_byte(&d, ack[i], &f);
    CHECK(got && !f.line_error && f.kind == FW_KIND_ACK && f.seq == 9);
    CHECK(d.counters.errors[FW_LINE_OVERSIZE] == 1 && d.counters.frames == 1);
}

int main(void) {
    test_crc_and_cobs();
    test_vectors_whole_and_bytewise();
    test_oversize_and_resync();
    TEST_DONE();
}
