"""What gets logged while training: image grids, KL per dimension, the mean-face baseline, checkpoint metadata.

Callbacks that need an encoder skip a model without one (the WGAN) with one log line."""

from facevae.callbacks.checkpoint_metadata import CheckpointMetadata
from facevae.callbacks.images import PriorInterpolation, PriorSamples, ReconstructionGrid
from facevae.callbacks.latent_analysis import LatentAnalysis
from facevae.callbacks.statistics import KLPerDimChart, MeanFaceBaseline

__all__ = [
    "CheckpointMetadata",
    "KLPerDimChart",
    "LatentAnalysis",
    "MeanFaceBaseline",
    "PriorInterpolation",
    "PriorSamples",
    "ReconstructionGrid",
]
