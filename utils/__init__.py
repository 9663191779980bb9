"""Leaf helpers that import no other project package: atomic file writes, seeding, distributed helpers, image
tensors and grids, progress, stop signals, folder locks and overlaps, tracking (metrics.jsonl and W&B), the run
environment, the config ``Section`` base, errors and limits."""
