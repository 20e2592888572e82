"""Logging from the training code people already have: Hugging Face's Trainer (`transformers.DlxCallback`)
and PyTorch Lightning (`lightning.DlxLogger`). Each module imports its framework only when imported."""
