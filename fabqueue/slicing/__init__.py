"""PrusaSlicer: profile lookup, the CLI runner and the G-code comment parser."""
