"""Which training images are poisoned: the teacher on each source vs. its variations, and baselines."""
