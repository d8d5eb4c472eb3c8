"""Training: the engine, its checkpoints, devices, learning-rate schedules and multi-process training."""
