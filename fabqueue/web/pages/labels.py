"""Words for codes the pages show (statuses, machine states, audit actions, notifications).

Each is a gettext msgid marked with ``N_`` so Babel extracts it; templates translate them
with ``label(code)``.
"""

from __future__ import annotations

from fabqueue.core.findings import N_

JOB_STATUS = {
    "analyzing": N_("being checked"),
    "invalid": N_("can't be used"),
    "awaiting_approval": N_("waiting for approval"),
    "rejected": N_("rejected"),
    "approved": N_("approved, in the queue"),
    "slicing": N_("being prepared"),
    "ready": N_("ready to start"),
    "running": N_("running"),
    "done": N_("done"),
    "failed": N_("failed"),
    "cancelled": N_("cancelled"),
    "interrupted": N_("interrupted"),
}

DEVICE_STATE = {
    "offline": N_("offline"),
    "idle": N_("idle"),
    "busy": N_("busy"),
    "paused": N_("paused"),
    "needs_bed_clear": N_("bed must be cleared"),
    "awaiting_operator": N_("waiting for the operator"),
    "heating": N_("heating"),
    "error": N_("error"),
    "disabled": N_("disabled"),
}

ACTIONS = {
    "uploaded": N_("uploaded"),
    "analysed": N_("checked"),
    "approve": N_("approved"),
    "reject": N_("rejected"),
    "operator_confirmed": N_("operator confirmed the checklist"),
    "cancel_requested": N_("cancel requested"),
    "stop_requested": N_("stop requested"),
    "pause_requested": N_("pause requested"),
    "resume_requested": N_("resume requested"),
    "reset_requested": N_("reset requested"),
    "moved": N_("moved in the queue"),
    "moved_to_front": N_("moved to the front of the queue"),
    "moved_back": N_("moved back in the queue"),
    "analysis_failed": N_("could not be checked"),
    "prepare_failed": N_("could not be prepared"),
    "start_refused": N_("the machine refused to start"),
    "requeued": N_("waiting again"),
    "reattached": N_("found running again after a restart"),
    "ended_done": N_("finished"),
    "ended_failed": N_("ended with a failure"),
    "ended_cancelled": N_("ended: cancelled"),
    "ended_interrupted": N_("ended: interrupted"),
    "frame_requested": N_("frame requested"),
    "start_requested": N_("start requested"),
    "bed_cleared": N_("bed cleared"),
    "retried": N_("tried again after a worker stopped"),
    # pickup (issue 18), spools (issue 18) and erasure (issue 21) write these to a job's history
    "pickup_waiting": N_("waiting for pickup"),
    "pickup_place": N_("put on a shelf"),
    "pickup_collected": N_("handed over"),
    "pickup_uncollected": N_("not collected in time"),
    "pickup_disposed": N_("disposed of"),
    "filament_low": N_("waits: too little filament"),
    "filament_risk_accepted": N_("filament shortage risk accepted"),
    "erased": N_("personal data erased"),
}

NOTIFICATIONS = {
    "job_done": N_("Job #{job} is done: you can collect it."),
    "job_rejected": N_("Job #{job} was rejected: {reason}"),
    "job_invalid": N_("Job #{job} can't be used: see what to fix."),
    "job_failed": N_("Job #{job} failed: {reason}"),
    "job_interrupted": N_("Job #{job} was interrupted; the lab staff will decide what next."),
    # privacy (issue 21): told 30 days before an inactive account is erased
    "account_expires": N_("Your account has not been used for a long time: sign in within "
                          "30 days, or it will be erased."),
    # trainings and maintenance (issue 17); {reason} says which training or machine
    "training_expiring": N_("A training of yours is about to lapse: {reason}."),
    "maintenance_due": N_("Maintenance: {reason}."),
    # a machine's controller was changed when FabQueue connected (GRBL's $10, issue 19)
    "machine_note": N_("Machine {device}: {reason}"),
}

REJECT_REASONS = (
    N_("The model is too big for our printers."),
    N_("The model has errors: repair it and upload again."),
    N_("Too much material: make it smaller or hollow."),
    N_("This material is not available now."),
    N_("Not allowed in the lab (weapons, offensive content)."),
)

KIND = {"printer": N_("printer"), "laser": N_("laser"), "print": N_("3D print"),
        "laser_job": N_("laser cutting")}

ROLES = {"resident": N_("resident"), "teacher": N_("teacher"), "staff": N_("staff"),
         "admin": N_("administrator")}

#: Temperature sensors as OctoPrint and the simulator name them.
TEMPERATURES = {"tool0": N_("nozzle"), "tool1": N_("nozzle 2"), "bed": N_("bed"),
                "chamber": N_("chamber")}

#: Units next to numbers (Russian writes мм, г, мин, см³).
UNITS = {"g": N_("g"), "mm": N_("mm"), "m": N_("m"), "min": N_("min"), "h": N_("h"),
         "s": N_("s"), "cm³": N_("cm³"), "°C": N_("°C")}

DRIVERS = {"simulated": N_("simulated"), "octoprint": "OctoPrint", "grbl": "GRBL",
           "moonraker": "Klipper (Moonraker)", "prusalink": "PrusaLink", "bambu": "Bambu Lab"}

OPERATIONS = {"cut": N_("cut"), "score": N_("score"), "engrave": N_("engrave")}
