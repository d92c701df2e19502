"""FabQueue: a self-hosted job queue for the printers and lasers of a makerspace."""

__version__ = "0.1.0"
