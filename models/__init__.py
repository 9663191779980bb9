"""Classifiers (torchvision / timm factories), their checkpoints, and teacher references."""
