"""Shared building blocks: config schema and loading, tracking, checkpoints, seeding, file I/O."""
