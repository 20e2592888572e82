"""Workers, the queue, standbys, executors (local and Ray)."""
