/* mailbox.c - the inter-core SPSC rings (see fw_mailbox.h; C port of joints/mailbox.py). */
#include "fw_mailbox.h"

void fw_ring_init(fw_ring_t *r, uint32_t capacity)
{
    r->head = 0u;
    r->tail = 0u;
    r->capacity = capacity;
    r->accepted = 0u;
    r->refused = 0u;
    r->high_water = 0u;
}

uint32_t fw_ring_len(const fw_ring_t *r)
{
    return r->tail - r->head;
}

uint32_t fw_ring_free(const fw_ring_t *r)
{
    return r->capacity - (r->tail - r->head);
}

bool fw_ring_nonempty(const fw_ring_t *r)
{
    return r->head != r->tail;
}

bool fw_ring_reserve(fw_ring_t *r, uint32_t *slot)
{
    if (r->tail - r->head >= r->capacity) {
        r->refused++;
        return false;
    }
    *slot = r->tail & (r->capacity - 1u);
    return true;
}

void fw_ring_commit(fw_ring_t *r)
{
    uint32_t depth;
    FW_MAILBOX_BARRIER(); /* the slot is written before the index that publishes it */
    r->tail++;
    r->accepted++;
    depth = r->tail - r->head;
    if (depth > r->high_water) {
        r->high_water = depth;
    }
}

bool fw_ring_peek(const fw_ring_t *r, uint32_t *slot)
{
    if (r->head == r->tail) {
        return false;
    }
    FW_MAILBOX_BARRIER(); /* the index is read before the slot it publishes */
    *slot = r->head & (r->capacity - 1u);
    return true;
}

void fw_ring_release(fw_ring_t *r)
{
    FW_MAILBOX_BARRIER(); /* the slot is read before the index that frees it */
    r->head++;
}

bool fw_ring_taken_since(const fw_ring_t *r, uint32_t mark)
{
    return (int32_t)(r->head - mark) >= 0;
}
