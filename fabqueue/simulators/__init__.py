"""Simulated machines shipped with the package: the GRBL emulator and the simulated printer."""
