"""A GRBL 1.1h emulator on a pseudo-terminal (see ``fabqueue.simulators.grbl_emulator``)."""
