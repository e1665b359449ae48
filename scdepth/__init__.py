"""scdepth: self-supervised monocular depth in dynamic scenes (SC-Depth V1 and V3)."""

__version__ = "0.1.0"
