"""vision_synth: exactly labelled synthetic datasets for detection and segmentation."""

__version__ = "0.1.0"
