/* Register file: defaults, saturation, host reads and writes with the Python model's error kinds. */
#include "fw_regs.h"
#include "test_util.h"

int main(void) {
    fw_regs_t r;
    fw_regs_init(&r, 0x0A01, 7, 1, 0);
    CHECK(fw_regs_get(&r, FW_REG_MODEL_NUMBER) == 0x0A01);
    CHECK(fw_regs_get(&r, FW_REG_SERIAL_NUMBER) == 7);
    CHECK(fw_regs_get(&r, FW_REG_POSITION_MIN) == -2617994);
    CHECK(fw_regs_get(&r, FW_REG_BUS_ADDRESS) == FW_ADDR_UNASSIGNED);
    fw_regs_set(&r, FW_REG_TORQUE_ENABLE, 5);
    CHECK(fw_regs_get(&r, FW_REG_TORQUE_ENABLE) == 1);
    uint8_t out[8];
    CHECK(fw_regs_read(&r, 1, 1, out) == FW_ERR_RANGE);
    CHECK(fw_regs_read(&r, 0, 1, out) == FW_ERR_LENGTH);
    CHECK(fw_regs_read(&r, 0, 0, out) == FW_ERR_LENGTH);
    CHECK(fw_regs_read(&r, 0, 2, out) == 0 && out[0] == 0x01 && out[1] == 0x0A);
    uint8_t one = 1;
    CHECK(fw_regs_write(&r, FW_REGADDR_MODEL_NUMBER, (const uint8_t *)"\0\0", 2, false) == FW_ERR_ACCESS);
    CHECK(fw_regs_write(&r, FW_REGADDR_TORQUE_ENABLE, &one, 1, false) == 0);
    uint8_t two = 2;
    CHECK(fw_regs_write(&r, FW_REGADDR_TORQUE_ENABLE, &two, 1, false) == FW_ERR_LIMIT);
    uint8_t gain[2] = {0x10, 0x00};
    CHECK(fw_regs_write(&r, FW_REGADDR_POS_KP, gain, 2, true) == FW_ERR_ACCESS);
    CHECK(fw_regs_write(&r, FW_REGADDR_POS_KP, gain, 2, false) == 0 && fw_regs_get(&r, FW_REG_POS_KP) == 16);
    uint8_t baud[4] = {1, 0, 0, 0};
    CHECK(fw_regs_write(&r, FW_REGADDR_BAUD_NEXT_UP, baud, 4, false) == FW_ERR_LIMIT);
    fw_regs_set(&r, FW_REG_BUS_ADDRESS, 3);
    fw_regs_reset_volatile(&r);
    CHECK(fw_regs_get(&r, FW_REG_BUS_ADDRESS) == FW_ADDR_UNASSIGNED && fw_regs_get(&r, FW_REG_POS_KP) == 16);
    fw_regs_set_state_block(&r, -5, 6, -7, 250, 12000, 0x81);
    CHECK(fw_regs_get(&r, FW_REG_PRESENT_POSITION) == -5 && fw_regs_get(&r, FW_REG_STATUS) == 0x81);
    TEST_DONE();
}
