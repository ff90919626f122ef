"""The camera: its configuration, its geometric model, sky coordinates, masks, and the
calibration of a new camera from a clear frame."""
