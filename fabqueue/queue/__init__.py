"""Work: the embedded Redis owner, RQ tasks, device workers and crash reconciliation."""
