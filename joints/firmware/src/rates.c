/* The line-rate switch on trial: a port of joints/rates.py (RateSwitch, check_write, apply_write, retime). */
#include <stddef.h>

#include "joint_priv.h"

static void set_state(fw_joint_t *j, int64_t state) { fw_regs_set(&j->regs, FW_REG_BAUD_STATE, state); }

void fw_rates_init(fw_joint_t *j) {
    j->port_rates[FW_PORT_UP] = fw_regs_get(&j->regs, FW_REG_UP_BAUD);
    j->port_rates[FW_PORT_DOWN] = fw_regs_get(&j->regs, FW_REG_DOWN_BAUD);
    j->rate_has_old = false;
    j->switch_at = FW_NO_DEADLINE;
    j->revert_at = FW_NO_DEADLINE;
    j->switches = 0;
    j->reverts = 0;
    set_state(j, FW_RATESTATE_IDLE);
}

int64_t fw_rates_deadline(const fw_joint_t *j) {
    return j->switch_at != FW_NO_DEADLINE ? j->switch_at : j->revert_at;
}

static void end(fw_joint_t *j, int64_t state) {
    j->rate_has_old = false;
    j->revert_at = FW_NO_DEADLINE;
    fw_regs_set(&j->regs, FW_REG_BAUD_NEXT_UP, 0);
    fw_regs_set(&j->regs, FW_REG_BAUD_NEXT_DOWN, 0);
    set_state(j, state);
}

static void revert(fw_joint_t *j) {
    j->port_rates[0] = j->rate_old[0];
    j->port_rates[1] = j->rate_old[1];
    j->reverts++;
    end(j, FW_RATESTATE_REVERTED);
}

bool fw_rates_handle_timer(fw_joint_t *j, int64_t now) {
    if (j->switch_at != FW_NO_DEADLINE && now >= j->switch_at) {
        j->switch_at = FW_NO_DEADLINE;
        j->rate_old[0] = j->port_rates[0];
        j->rate_old[1] = j->port_rates[1];
        j->rate_has_old = true;
        int64_t up = fw_regs_get(&j->regs, FW_REG_BAUD_NEXT_UP), down = fw_regs_get(&j->regs, FW_REG_BAUD_NEXT_DOWN);
        if (up) j->port_rates[FW_PORT_UP] = up;
        if (down) j->port_rates[FW_PORT_DOWN] = down;
        j->revert_at = now + fw_regs_get(&j->regs, FW_REG_BAUD_TRIAL) * FW_NS_PER_MS;
        j->switches++;
        set_state(j, FW_RATESTATE_TRIAL);
        return true;
    }
    if (j->revert_at != FW_NO_DEADLINE && now >= j->revert_at) {
        revert(j);
        return true;
    }
    return false;
}

void fw_rates_retime(fw_joint_t *j) {
    for (int port = 0; port < 2; port++) j->links[port].config.baud = j->port_rates[port];
}

uint8_t fw_rates_check_write(const fw_joint_t *j, const fw_reg_values_t *v) {
    bool settings = fw_values_has(v, FW_REG_BAUD_NEXT_UP) || fw_values_has(v, FW_REG_BAUD_NEXT_DOWN) ||
                    fw_values_has(v, FW_REG_BAUD_DELAY) || fw_values_has(v, FW_REG_BAUD_TRIAL);
    if (!settings && !fw_values_has(v, FW_REG_BAUD_COMMAND)) return 0;
    if (fw_values_get(v, FW_REG_BAUD_NEXT_UP, 0) > j->config.max_baud ||
        fw_values_get(v, FW_REG_BAUD_NEXT_DOWN, 0) > j->config.max_baud) {
        return FW_ERR_LIMIT;
    }
    int64_t state = fw_regs_get(&j->regs, FW_REG_BAUD_STATE);
    bool busy = state == FW_RATESTATE_ARMED || state == FW_RATESTATE_TRIAL;
    int64_t command = fw_values_get(v, FW_REG_BAUD_COMMAND, FW_RATECMD_NONE);
    if (busy && (command == FW_RATECMD_COMMIT || settings)) return FW_ERR_BUSY;
    if (command == FW_RATECMD_CONFIRM && state != FW_RATESTATE_TRIAL) return FW_ERR_BUSY;
    return 0;
}

static bool command(fw_joint_t *j, int64_t cmd, int64_t now) {
    bool changed = false;
    if (cmd == FW_RATECMD_COMMIT) {
        j->switch_at = now + fw_regs_get(&j->regs, FW_REG_BAUD_DELAY) * FW_NS_PER_MS;
        set_state(j, FW_RATESTATE_ARMED);
    } else if (cmd == FW_RATECMD_CONFIRM) {
        fw_regs_set(&j->regs, FW_REG_UP_BAUD, j->port_rates[FW_PORT_UP]);
        fw_regs_set(&j->regs, FW_REG_DOWN_BAUD, j->port_rates[FW_PORT_DOWN]);
        end(j, FW_RATESTATE_IDLE);
    } else if (cmd == FW_RATECMD_CANCEL) {
        if (j->switch_at != FW_NO_DEADLINE) {
            j->switch_at = FW_NO_DEADLINE;
            set_state(j, FW_RATESTATE_IDLE);
        } else if (fw_regs_get(&j->regs, FW_REG_BAUD_STATE) == FW_RATESTATE_TRIAL) {
            revert(j);
            changed = true;
        }
    }
    fw_regs_set(&j->regs, FW_REG_BAUD_COMMAND, FW_RATECMD_NONE);
    return changed;
}

void fw_rates_apply_write(fw_joint_t *j, const fw_reg_values_t *v, int64_t now) {
    int64_t cmd = fw_values_get(v, FW_REG_BAUD_COMMAND, FW_RATECMD_NONE);
    if (cmd != FW_RATECMD_NONE && command(j, cmd, now)) fw_rates_retime(j);
}
