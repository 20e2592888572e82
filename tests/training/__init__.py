"""The training loop, model validation and sizes, ViT and text models."""
