/* The register file: one joint's register memory and its rules (joints/registers.py).
 *
 * Theory of operation: the table itself (addresses, sizes, ranges, defaults) is generated from the Python
 * definition into gen/fw_registers_gen.h. fw_regs_t is the fixed-size little-endian image the host reads and
 * writes. The firmware side uses fw_regs_get / fw_regs_set (saturating, no access rule) by register id; the host
 * side goes through fw_regs_read / fw_regs_check_write / fw_regs_write, which check a whole request and change
 * nothing on error, exactly as RegisterFile does. Errors are ErrorKind values (FW_ERR_*), 0 for none.
 */
#ifndef FW_REGS_H
#define FW_REGS_H

#include <stdbool.h>
#include <stdint.h>

#include "fw_registers_gen.h"
#include "fw_wire_gen.h"

typedef struct fw_regs {
    uint8_t mem[FW_REG_TABLE_SIZE];
} fw_regs_t;

/* The registers a checked host write changes: a bit per register id and the new values. */
typedef struct fw_reg_values {
    uint64_t present;
    int64_t value[FW_REG_COUNT];
} fw_reg_values_t;

static inline bool fw_values_has(const fw_reg_values_t *v, unsigned id) { return (v->present >> id) & 1u; }
static inline int64_t fw_values_get(const fw_reg_values_t *v, unsigned id, int64_t dflt) {
    return fw_values_has(v, id) ? v->value[id] : dflt;
}

void fw_regs_init(fw_regs_t *r, uint16_t model, uint32_t serial, uint8_t fw_major, uint8_t fw_minor);
int64_t fw_regs_get(const fw_regs_t *r, unsigned id);
/* Firmware-side store: the value saturates to the register's range. */
void fw_regs_set(fw_regs_t *r, unsigned id, int64_t value);
void fw_regs_set_state_block(fw_regs_t *r, int32_t position, int32_t velocity, int16_t current,
                             int16_t temperature, uint16_t voltage, uint8_t status);
/* What a reboot does: volatile registers back to their defaults. */
void fw_regs_reset_volatile(fw_regs_t *r);
/* Host side. fw_regs_read copies `length` bytes to `out` (it must hold them); returns 0 or an ErrorKind. */
uint8_t fw_regs_span(uint32_t address, int32_t length, unsigned *first, unsigned *last);
uint8_t fw_regs_read(const fw_regs_t *r, uint32_t address, int32_t length, uint8_t *out);
uint8_t fw_regs_check_write(const fw_regs_t *r, uint32_t address, const uint8_t *data, int32_t length,
                            bool torque_on, fw_reg_values_t *values);
uint8_t fw_regs_write(fw_regs_t *r, uint32_t address, const uint8_t *data, int32_t length, bool torque_on);

#endif
