"""Running scans at scale: shards for farm tasks, resume, merge, and the Ray engine."""
