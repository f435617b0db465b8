"""Restoring pictures: the Python API, the per-picture pipeline, the engine and its fast network."""
