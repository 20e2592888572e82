"""The training loop (`train`), its checkpoints (and their writer in the background), and the devices it runs on."""
