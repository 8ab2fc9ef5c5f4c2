"""Shared machinery: backbone, attention, masks, registry, config, checkpoints, training loop."""
