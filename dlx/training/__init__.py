"""The training loop (`train`), its checkpoints, and the devices it runs on."""
