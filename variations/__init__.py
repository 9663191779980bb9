"""The variation generator: output plan, sharding, resumable generation loop, manifest."""
