/* The register file (joints/registers.py RegisterFile): see include/fw_regs.h. */
#include "fw_regs.h"

#include <string.h>

static const uint32_t supported_bauds[FW_SUPPORTED_BAUDS_COUNT] = FW_SUPPORTED_BAUDS_INIT;

static void put(fw_regs_t *r, unsigned id, int64_t value) {
    const fw_reg_info_t *info = &fw_reg_table[id];
    uint64_t u = (uint64_t)value;
    for (unsigned k = 0; k < info->size; k++) {
        r->mem[info->address + k] = (uint8_t)(u >> (8u * k));
    }
}

static int64_t decode(const uint8_t *p, unsigned size, bool is_signed) {
    uint64_t u = 0;
    for (unsigned k = 0; k < size; k++) {
        u |= (uint64_t)p[k] << (8u * k);
    }
    if (is_signed && size < 8 && (u >> (8u * size - 1u)) & 1u) {
        u |= ~(uint64_t)0 << (8u * size);
    }
    return (int64_t)u;
}

void fw_regs_init(fw_regs_t *r, uint16_t model, uint32_t serial, uint8_t fw_major, uint8_t fw_minor) {
    memset(r->mem, 0, sizeof r->mem);
    for (unsigned k = 0; k < FW_REG_COUNT; k++) {
        put(r, k, fw_reg_default(&fw_reg_table[k]));
    }
    fw_regs_set(r, FW_REG_MODEL_NUMBER, model);
    fw_regs_set(r, FW_REG_SERIAL_NUMBER, serial);
    fw_regs_set(r, FW_REG_FIRMWARE_MAJOR, fw_major);
    fw_regs_set(r, FW_REG_FIRMWARE_MINOR, fw_minor);
}

int64_t fw_regs_get(const fw_regs_t *r, unsigned id) {
    const fw_reg_info_t *info = &fw_reg_table[id];
    return decode(&r->mem[info->address], info->size, info->is_signed != 0);
}

void fw_regs_set(fw_regs_t *r, unsigned id, int64_t value) {
    const fw_reg_info_t *info = &fw_reg_table[id];
    if (value < fw_reg_minimum(info)) value = fw_reg_minimum(info);
    if (value > fw_reg_maximum(info)) value = fw_reg_maximum(info);
    put(r, id, value);
}

void fw_regs_set_state_block(fw_regs_t *r, int32_t position, int32_t velocity, int16_t current,
                             int16_t temperature, uint16_t voltage, uint8_t status) {
    put(r, FW_REG_PRESENT_POSITION, position);
    put(r, FW_REG_PRESENT_VELOCITY, velocity);
    put(r, FW_REG_PRESENT_CURRENT, current);
    put(r, FW_REG_PRESENT_TEMPERATURE, temperature);
    put(r, FW_REG_PRESENT_VOLTAGE, voltage);
    put(r, FW_REG_STATUS, status);
}

void fw_regs_reset_volatile(fw_regs_t *r) {
    for (unsigned k = 0; k < FW_REG_COUNT; k++) {
        if (!fw_reg_table[k].persistent) put(r, k, fw_reg_default(&fw_reg_table[k]));
    }
}

static int by_start(uint32_t address) {
    for (unsigned k = 0; k < FW_REG_COUNT; k++) {
        if (fw_reg_table[k].address == address) return (int)k;
    }
    return -1;
}

static int by_end(int64_t end) {
    for (unsigned k = 0; k < FW_REG_COUNT; k++) {
        if ((int64_t)fw_reg_table[k].address + fw_reg_table[k].size == end) return (int)k;
    }
    return -1;
}

uint8_t fw_regs_span(uint32_t address, int32_t length, unsigned *first, unsigned *last) {
    int f = by_start(address);
    if (f < 0) return FW_ERR_RANGE;
    int l = by_end((int64_t)address + length);
    if (length <= 0 || l < 0 || l < f) return FW_ERR_LENGTH;
    *first = (unsigned)f;
    *last = (unsigned)l;
    return 0;
}

uint8_t fw_regs_read(const fw_regs_t *r, uint32_t address, int32_t length, uint8_t *out) {
    unsigned first, last;
    uint8_t err = fw_regs_span(address, length, &first, &last);
    if (err) return err;
    memcpy(out, &r->mem[address], (size_t)length);
    return 0;
}

static bool staged_ok(int64_t v) {
    if (v == 0) return true;
    for (unsigned k = 0; k < FW_SUPPORTED_BAUDS_COUNT; k++) {
        if (v == supported_bauds[k]) return true;
    }
    return false;
}

uint8_t fw_regs_check_write(const fw_regs_t *r, uint32_t address, const uint8_t *data, int32_t length,
                            bool torque_on, fw_reg_values_t *values) {
    unsigned first, last;
    values->present = 0;
    uint8_t err = fw_regs_span(address, length, &first, &last);
    if (err) return err;
    for (unsigned k = first; k <= last; k++) {
        const fw_reg_info_t *info = &fw_reg_table[k];
        if (!info->writable || (info->persistent && torque_on)) {
            values->present = 0;
            return FW_ERR_ACCESS;
        }
        int64_t v = decode(&data[info->address - address], info->size, info->is_signed != 0);
        if (v < fw_reg_minimum(info) || v > fw_reg_maximum(info)) {
            values->present = 0;
            return FW_ERR_LIMIT;
        }
        values->present |= (uint64_t)1 << k;
        values->value[k] = v;
    }
    int64_t lo = fw_values_get(values, FW_REG_POSITION_MIN, fw_regs_get(r, FW_REG_POSITION_MIN));
    int64_t hi = fw_values_get(values, FW_REG_POSITION_MAX, fw_regs_get(r, FW_REG_POSITION_MAX));
    if (lo > hi || !staged_ok(fw_values_get(values, FW_REG_BAUD_NEXT_UP, 0)) ||
        !staged_ok(fw_values_get(values, FW_REG_BAUD_NEXT_DOWN, 0))) {
        values->present = 0;
        return FW_ERR_LIMIT;
    }
    return 0;
}

uint8_t fw_regs_write(fw_regs_t *r, uint32_t address, const uint8_t *data, int32_t length, bool torque_on) {
    fw_reg_values_t values;
    uint8_t err = fw_regs_check_write(r, address, data, length, torque_on, &values);
    if (err) return err;
    for (unsigned k = 0; k < FW_REG_COUNT; k++) {
        if (fw_values_has(&values, k)) put(r, k, values.value[k]);
    }
    return 0;
}
