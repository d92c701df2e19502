/* FabQueue's addition to the grbl-sim test harness (linked into grbl_sim.exe only; GPL-3.0
 * like grbl-sim itself). Not part of FabQueue; GRBL's own sources are compiled unchanged.
 *
 * 1. Waits that sleep. On a microcontroller GRBL's main loop spins while it waits (for
 * planner room, for the serial line, for the planner to empty): that costs nothing there.
 * Compiled as a host program it spins a whole core, beside grbl-sim's clock thread, which
 * needs a core of its own to keep near real time. On a 2-core test machine the two starved
 * each other and the Python driver under test: jobs ran 4x slower than the firmware's own
 * clock and timed out. grbl-sim's authors already put a yield in serial_read for this
 * reason ("ensures hardware simulator gets some cycles"); a yield of 0 s returns at once on
 * Linux. Here the waits are real: 50 us each time a wait loop checks its realtime commands
 * (calls from other units, linked with -Wl,--wrap), and the serial hook sleeps only when no
 * byte is waiting (install_grbl_peer.sh).
 *
 * 2. A cycle the simulated clock stopped is started again. grbl-sim runs the stepper
 * interrupt on its clock thread; the segments it steps through are prepared by the firmware
 * thread. When the host does not run the firmware thread for longer than the segment
 * buffer lasts (~60 ms: a loaded test machine), the interrupt runs dry and ends the cycle
 * with blocks still planned, which never happens on the microcontroller. GRBL's main loop
 * and its planner-full wait start such a cycle again by themselves, but
 * protocol_buffer_synchronize (M5, M9, G4, $ commands) starts it once on entry and then
 * waits for an empty planner forever: seen as a job frozen before its last M5. This copy of
 * that function (protocol.c, GRBL 1.1h) also restarts a cycle found idle with blocks. */
#include <time.h>
#include "../grbl.h"

void __real_protocol_execute_realtime(void);

void __wrap_protocol_execute_realtime(void)
{
  struct timespec pause = {0, 50 * 1000};
  nanosleep(&pause, NULL);
  __real_protocol_execute_realtime();
}

void __wrap_protocol_buffer_synchronize(void)
{
  protocol_auto_cycle_start();
  do {
    __wrap_protocol_execute_realtime();
    if (sys.abort) { return; }
    if (sys.state == STATE_IDLE) { protocol_auto_cycle_start(); }  /* the addition */
  } while (plan_get_current_block() || (sys.state == STATE_CYCLE));
}
