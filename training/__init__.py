"""The training engine: epoch loops, losses, metrics, optimisers."""
