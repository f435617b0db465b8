"""Training a MemNet: recipes, patches, the training loop, its checkpoints and log."""
