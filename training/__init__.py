"""Training teachers and students: setup, the epoch loop, objectives, metrics, the run directory."""
