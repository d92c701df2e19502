"""The pure core: state machines, estimates, fit and scheduling. No I/O, no frameworks."""
