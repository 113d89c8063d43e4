/* fw_mailbox.h - bounded single-producer / single-consumer rings between the two cores (C port of
 * joints/mailbox.py).
 *
 * Theory of operation
 * -------------------
 * On a dual-core joint controller the comm core and the control core share a ring of fixed capacity (a power of
 * two: the free-running 32-bit indices wrap with a mask). One core only puts, the other only gets; each index is
 * written by one side only, so no lock is needed. `tail` (posted) is the producer's index, `head` (taken) the
 * consumer's; a post marked m is taken once taken - m >= 0 (wrap-safe signed difference).
 *
 * Full rule (never lose silently): a put never overwrites and never blocks. When the ring is full it returns false
 * and counts the refusal; the producer acts on false (see joints/mailbox.py). The ring here holds only the indices
 * and counters; the typed slot arrays live next to it (fw_control.h: the command and fault-event mailboxes), and
 * a put is reserve -> write the slot -> commit, a get is peek -> read the slot -> release, so that on real
 * hardware a barrier (FW_MAILBOX_BARRIER) can sit between the slot access and the index store.
 *
 * No heap, no globals: a ring is a plain struct inside its owner.
 */
#ifndef FW_MAILBOX_H
#define FW_MAILBOX_H

#include <stdbool.h>
#include <stdint.h>

#ifndef FW_MAILBOX_BARRIER
/* A data memory barrier on a real dual-core part (e.g. __DMB() on Cortex-M); nothing in the simulator. */
#define FW_MAILBOX_BARRIER() ((void)0)
#endif

typedef struct fw_ring {
    uint32_t head;       /* next slot to read: written by the consumer only (the "taken" mark) */
    uint32_t tail;       /* next slot to write: written by the producer only (the "posted" mark) */
    uint32_t capacity;   /* a power of two */
    uint32_t accepted;   /* puts that succeeded */
    uint32_t refused;    /* puts refused because the ring was full */
    uint32_t high_water; /* deepest the ring has been */
} fw_ring_t;

/* Empty ring of `capacity` slots (a power of two, >= 1). */
void fw_ring_init(fw_ring_t *r, uint32_t capacity);
/* Items in the ring (posted - taken). */
uint32_t fw_ring_len(const fw_ring_t *r);
/* Free slots. */
uint32_t fw_ring_free(const fw_ring_t *r);
/* Something to get: the consumer's test of the two indices (Mailbox.__bool__). */
bool fw_ring_nonempty(const fw_ring_t *r);
/* Producer: index of the slot to write into *slot, or false (refused += 1) when full. */
bool fw_ring_reserve(fw_ring_t *r, uint32_t *slot);
/* Producer: publish the slot reserved last (posted += 1, accepted, high_water). */
void fw_ring_commit(fw_ring_t *r);
/* Consumer: index of the oldest slot into *slot, or false when empty. */
bool fw_ring_peek(const fw_ring_t *r, uint32_t *slot);
/* Consumer: free the slot peeked last (taken += 1). */
void fw_ring_release(fw_ring_t *r);
/* True once the post marked `mark` (a `posted` value) has been taken: taken - mark >= 0, wrap-safe. */
bool fw_ring_taken_since(const fw_ring_t *r, uint32_t mark);

#endif /* FW_MAILBOX_H */
