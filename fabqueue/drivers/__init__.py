"""Drivers: each talks to one kind of machine and knows nothing of the web, database or RQ."""
