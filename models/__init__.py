"""Classifiers (torchvision / timm factories) and the image-variation backends."""
