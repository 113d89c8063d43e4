/* Unit tests of the control core (src/control.c) on the C board (sil/sil_board.c): the behaviour the Python
 * ControlCore's tests check (tests/firmware/ compares the two tick for tick; here the C core stands alone). */
#include <math.h>
#include <stdlib.h>

#include "fw_control.h"
#include "fw_regs.h"
#include "sil_board.h"
#include "test_util.h"


#define MS 1000000LL

typedef struct rig {
    sil_board_t board;
    fw_regs_t regs;
    ctl_core_t core;
    fw_motor_params_t params;
    int64_t now;
    int latched;
    int ticks;
} rig_t;

static void on_latch(void *ctx, int64_t at, uint16_t tag)
{
    rig_t *r = (rig_t *)ctx;
    (void)at;
    (void)tag;
    r->latched++;
}

static void on_tick(void *ctx, int64_t t)
{
    rig_t *r = (rig_t *)ctx;
    (void)t;
    r->ticks++;
}

static void rig_init(rig_t *r)
{
    fw_motor_params_default(&r->params);
    sil_board_init(&r->board, &r->params, 0, 0.0);
    fw_regs_init(&r->regs, 0, 0, 1, 0);
    ctl_init(&r->core, &r->regs, sil_board_motor(&r->board), FW_DEFAULT_PERIOD_NS, 0);
    ctl_set_latch_hook(&r->core, on_latch, r);
    ctl_set_tick_hook(&r->core, on_tick, r);
    r->now = 0;
    r->latched = 0;
    r->ticks = 0;
}

static void cmd(rig_t *r, uint8_t kind, int32_t a, int32_t b)
{
    ctl_command_t c;
    c.kind = kind;
    c.a = a;
    c.b = b;
    CHECK(ctl_command(&r->core, &c));
}

static void run(rig_t *r, int ms)
{
    int k;
    for (k = 0; k < ms; k++) {
        r->now += MS;
        ctl_handle_timer(&r->core, r->now);
    }
}

static int drain(rig_t *r, uint8_t code, int active)
{
    ctl_event_t ev;
    int found = 0;
    while (ctl_next_event(&r->core, &ev)) {
        found |= ev.code == code && ev.active == active;
    }
    return found;
}

static void position_goal_reached_and_held(rig_t *r)
{
    rig_init(r);
    CHECK(ctl_state(&r->core)->status & FW_STATUS_REBOOTED);
    cmd(r, FW_CMD_TORQUE, 1, 0);
    cmd(r, FW_CMD_SET_GOAL, FW_GOAL_POSITION, 1000000);
    run(r, 1000);
    CHECK(labs((long)ctl_state(&r->core)->position - 1000000L) < 5000L);
    CHECK(ctl_torque(&r->core) && (ctl_state(&r->core)->status & FW_STATUS_TORQUE_ON));
    CHECK(r->ticks == 1000 && ctl_sampled_at(&r->core) == r->now);
    cmd(r, FW_CMD_SET_GOAL, FW_GOAL_POSITION, 50000000); /* far beyond the limit: clamped */
    run(r, 1500);
    CHECK(labs((long)ctl_state(&r->core)->position - 2617994L) < 10000L);
    CHECK(ctl_state(&r->core)->status & FW_STATUS_AT_LIMIT);
}

static void estop_brakes_then_removes_torque(rig_t *r)
{
    double stopped;
    rig_init(r);
    cmd(r, FW_CMD_TORQUE, 1, 0);
    cmd(r, FW_CMD_SET_GOAL, FW_GOAL_VELOCITY, 3000000);
    run(r, 400);
    CHECK(r->board.s.velocity > 2.5);
    cmd(r, FW_CMD_RELEASE_ESTOP, 0, 0); /* queued before the e-stop: stale */
    ctl_estop(&r->core, r->now + MS / 2);
    CHECK(r->board.s.time == r->now + MS / 2 && r->board.s.voltage_cmd == 0.0 && r->board.s.bridge_on);
    run(r, 60);
    CHECK(fabs(r->board.s.velocity) < 0.1 && r->core.stale_releases == 1u);
    CHECK(!ctl_torque(&r->core) && (ctl_flags(&r->core) & FW_STATUS_ESTOPPED));
    CHECK(drain(r, FW_FAULT_ESTOP, 1));
    stopped = r->board.s.position;
    cmd(r, FW_CMD_TORQUE, 1, 0); /* refused while e-stopped */
    run(r, 5);
    CHECK(!ctl_torque(&r->core));
    cmd(r, FW_CMD_RELEASE_ESTOP, 0, 0);
    run(r, 100);
    CHECK(drain(r, FW_FAULT_ESTOP, 0) && !ctl_torque(&r->core) && !(ctl_flags(&r->core) & FW_STATUS_ESTOPPED));
    cmd(r, FW_CMD_TORQUE, 1, 0); /* ready: torque-on holds where it is */
    run(r, 300);
    CHECK(ctl_torque(&r->core) && fabs(r->board.s.position - stopped) < 2e-3);
}

static void goal_slot_latches_at_its_instant(rig_t *r)
{
    rig_init(r);
    cmd(r, FW_CMD_TORQUE, 1, 0);
    run(r, 5);
    ctl_post_goal(&r->core, FW_GOAL_POSITION, 500000, r->now + 300000, 7);
    CHECK(ctl_next_deadline(&r->core) == r->now + 300000);
    ctl_handle_timer(&r->core, r->now + 299999);
    CHECK(r->latched == 0);
    ctl_handle_timer(&r->core, r->now + 300000);
    CHECK(r->latched == 1 && r->core.goals_latched == 1u && r->core.goal == 500000);
    CHECK(ctl_next_deadline(&r->core) == r->now + MS);
    ctl_estop(&r->core, r->now + 400000);
    ctl_post_goal(&r->core, FW_GOAL_POSITION, 0, r->now + 500000, 8); /* while stopped: ignored */
    run(r, 2);
    CHECK(r->latched == 1 && r->core.goal == 500000);
}

static void watchdog_and_faults(rig_t *r)
{
    ctl_command_t c = {FW_CMD_HEARTBEAT, 0, 0};
    int k, refused = 0;
    rig_init(r);
    cmd(r, FW_CMD_TORQUE, 1, 0);
    cmd(r, FW_CMD_WATCHDOG, 50, 0);
    run(r, 200);
    CHECK(drain(r, FW_FAULT_WATCHDOG, 1) && !ctl_torque(&r->core));
    CHECK((ctl_flags(&r->core) & (FW_STATUS_WATCHDOG | FW_STATUS_FAULT)) == (FW_STATUS_WATCHDOG | FW_STATUS_FAULT));
    cmd(r, FW_CMD_CLEAR, FW_STATUS_WATCHDOG | FW_STATUS_FAULT, 0);
    cmd(r, FW_CMD_WATCHDOG, 0, 0);
    run(r, 2);
    CHECK(!(ctl_flags(&r->core) & FW_BLOCKING_FLAGS) && drain(r, FW_FAULT_WATCHDOG, 0));
    r->board.s.temperature = 95.0; /* over the 80 degC limit */
    run(r, 1);
    CHECK(drain(r, FW_FAULT_OVER_TEMPERATURE, 1) && (ctl_flags(&r->core) & FW_STATUS_OVERHEAT));
    r->board.s.supply_voltage = 8.0;
    run(r, 20);
    CHECK(drain(r, FW_FAULT_UNDERVOLTAGE, 1));
    for (k = 0; k < 20; k++) { /* the command ring holds 16 */
        refused += !ctl_command(&r->core, &c);
    }
    CHECK(refused == 4 && ctl_commands_refused(&r->core) == 4u && ctl_commands_free(&r->core) == 0u);
    CHECK(ctl_commands_posted(&r->core) - ctl_commands_taken(&r->core) == 16u);
    run(r, 1);
    CHECK(ctl_commands_len(&r->core) == 0u && ctl_commands_posted(&r->core) == ctl_commands_taken(&r->core));
    for (k = 0; k < 20; k++) { /* nobody drains the events: the ring refuses, the flags keep the fault */
        r->board.s.supply_voltage = (k % 2) ? 8.0 : 12.0;
        run(r, 11);
    }
    CHECK(ctl_events_refused(&r->core) > 0u && (ctl_flags(&r->core) & FW_STATUS_FAULT));
}

int main(void)
{
    rig_t *r = (rig_t *)calloc(1, sizeof(rig_t)); /* the test's own memory; the firmware allocates nothing */
    if (r == NULL) {
        return 2;
    }
    position_goal_reached_and_held(r);
    estop_brakes_then_removes_torque(r);
    goal_slot_latches_at_its_instant(r);
    watchdog_and_faults(r);
    free(r);
    TEST_DONE();
}
