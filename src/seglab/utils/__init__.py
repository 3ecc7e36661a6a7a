"""Glue used by the task entry points: config tree, W&B mode, instantiation helpers."""
