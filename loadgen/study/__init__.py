"""The receive-mode memory study (``loadgen recv-modes``): plan, measure, summarise."""
