/* Unit tests of the inter-core rings (src/mailbox.c): FIFO order, full refusal counted, marks across the 32-bit
 * wrap of the indices, high water. */
#include "fw_mailbox.h"
#include "test_util.h"


static int put(fw_ring_t *r, int *slots, int v)
{
    uint32_t k;
    if (!fw_ring_reserve(r, &k)) {
        return 0;
    }
    slots[k] = v;
    fw_ring_commit(r);
    return 1;
}

static int get(fw_ring_t *r, const int *slots, int *v)
{
    uint32_t k;
    if (!fw_ring_peek(r, &k)) {
        return 0;
    }
    *v = slots[k];
    fw_ring_release(r);
    return 1;
}

static void fifo_and_full(void)
{
    fw_ring_t r;
    int slots[4], v = -1, i;
    fw_ring_init(&r, 4u);
    CHECK(!fw_ring_nonempty(&r) && fw_ring_len(&r) == 0u && fw_ring_free(&r) == 4u);
    CHECK(!get(&r, slots, &v));
    for (i = 0; i < 4; i++) {
        CHECK(put(&r, slots, 10 + i));
    }
    CHECK(!put(&r, slots, 99) && r.refused == 1u && r.accepted == 4u && r.high_water == 4u);
    CHECK(fw_ring_free(&r) == 0u && fw_ring_len(&r) == 4u);
    for (i = 0; i < 4; i++) {
        CHECK(get(&r, slots, &v) && v == 10 + i);
    }
    CHECK(!fw_ring_nonempty(&r));
}

static void marks_across_the_wrap(void)
{
    fw_ring_t r;
    int slots[16], v = 0, i;
    uint32_t mark;
    fw_ring_init(&r, 16u);
    r.head = r.tail = 0xFFFFFFF0u; /* 16 posts from the wrap */
    for (i = 0; i < 40; i++) {
        CHECK(put(&r, slots, i));
        mark = r.tail;
        CHECK(!fw_ring_taken_since(&r, mark));
        CHECK(get(&r, slots, &v) && v == i);
        CHECK(fw_ring_taken_since(&r, mark));
    }
    CHECK(r.tail < 0x100u && fw_ring_len(&r) == 0u && r.high_water == 1u);
    for (i = 0; i < 16; i++) {
        CHECK(put(&r, slots, i));
    }
    CHECK(!put(&r, slots, 16) && fw_ring_len(&r) == 16u);
}

int main(void)
{
    fifo_and_full();
    marks_across_the_wrap();
    TEST_DONE();
}
