"""tdgen: synthetic multi-object-tracking training data from a tracklet-conditioned video diffusion model."""

__version__ = "0.1.0"

