"""What the device worker needs to know of machines, without driving one: the driver a
device's settings ask for, our name for a job on a machine, and the state of a machine that
runs no job of ours, read from what it reports itself (pure)."""

from __future__ import annotations

import os

from fabqueue.core.devices import DeviceState
from fabqueue.core.jobs import JobStatus
from fabqueue.core.reasons import N_, reason
from fabqueue.drivers.base import Driver, DriverError, MachineState, Outcome
from fabqueue.store.models import Device

#: The job status each way a machine can end a job.
OUTCOME_STATUS = {
    Outcome.DONE: JobStatus.DONE,
    Outcome.FAILED: JobStatus.FAILED,
    Outcome.CANCELLED: JobStatus.CANCELLED,
    Outcome.INTERRUPTED: JobStatus.INTERRUPTED,
}


def job_name(job_id: int) -> str:
    """Our name for a job on a machine: how a restarted worker recognises it."""
    from fabqueue.drivers.octoprint import file_name_for

    return file_name_for(job_id)


def build_driver(device: Device) -> Driver:
    """A driver from the device's settings; secrets come from the environment."""
    conn = device.connection or {}
    settings = device.settings or {}
    if device.driver == "simulated":
        from fabqueue.drivers.simulated import SimulatedPrinterDriver

        speed = float(settings.get("simulated_speed") or 20.0)
        laser_max_s = float(settings.get("max_power_s", 1000)) if device.kind == "laser" else None
        return SimulatedPrinterDriver(device.id, laser_max_s=laser_max_s, speed=speed)
    if device.driver == "octoprint":
        from fabqueue.drivers.hosts import check_secret_name
        from fabqueue.drivers.octoprint import OctoPrintDriver

        env_name = conn.get("api_key_env")
        if env_name:
            check_secret_name(env_name)  # never read FabQueue's own settings for a host
        key = os.environ.get(env_name or "", "")
        if not key:
            raise DriverError(reason("no_api_key", N_(
                "the API key variable {name} is not set in the environment"),
                name=env_name or "–"), code="no_api_key")
        return OctoPrintDriver(conn["url"], key)
    if device.driver in ("moonraker", "prusalink", "bambu"):
        from fabqueue.drivers.hosts import build_host_driver

        return build_host_driver(device.driver, conn)
    if device.driver == "grbl":
        from fabqueue.drivers.grbl import GrblDriver

        return GrblDriver(conn["port"], int(conn.get("baud") or 115200),
                          homing=bool(settings.get("homing")))
    raise DriverError(f"unknown driver {device.driver}", code="bad_driver")


LEFT_BUSY = (DeviceState.BUSY, DeviceState.HEATING, DeviceState.PAUSED)


def ours(machine_job_name: str | None) -> int | None:
    """The FabQueue job id in the name of what the machine holds (None: not one of ours)."""
    from fabqueue.drivers.octoprint import job_id_from_name

    return job_id_from_name(machine_job_name) if machine_job_name else None


def repaired_state(kind: str, machine: MachineState, bed_may_hold_print: bool,
                   message: str | None = None,
                   ours: int | None = None) -> tuple[DeviceState, str | None]:
    """The state of a machine that runs no job of ours, from what it reports itself."""
    if machine in (MachineState.ERROR, MachineState.OFFLINE):
        return DeviceState(machine.value), message
    if ours is not None and kind == "printer" and machine == MachineState.PAUSED:
        # one of our jobs, already ended as interrupted, still held paused by the host (it
        # outlived its link to us): the bed holds that print; staff decide, nothing resumes
        return DeviceState.NEEDS_BED_CLEAR, reason(
            "interrupted_job_held", N_("Job {job} was interrupted and is still held paused on "
                                       "the printer: cancel it there and clear the bed."),
            job=ours)
    if machine in (MachineState.RUNNING, MachineState.PAUSED):
        return DeviceState.BUSY, reason(
            "untracked_print", N_("The machine is running something FabQueue did not start; "
                                  "it takes no job until that ends."))
    return (DeviceState.NEEDS_BED_CLEAR if kind == "printer" and bed_may_hold_print
            else DeviceState.IDLE), None


def is_heating(temps: dict[str, dict[str, float | None]], extra: dict[str, object]) -> bool:
    if "sim_state" in extra:
        return extra["sim_state"] == "heating"
    for t in (temps or {}).values():
        target, actual = t.get("target"), t.get("actual")
        if target and actual is not None and target > 0 and actual < target - 3:
            return True
    return False
