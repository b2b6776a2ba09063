"""Running experiments: lineages ask, the schedulers drive the five steps, the session records."""
