"""What gets logged while training: image grids, KL per dimension, the mean-face baseline, checkpoint metadata."""

from facevae.callbacks.checkpoint_metadata import CheckpointMetadata
from facevae.callbacks.images import PriorSamples, ReconstructionGrid
from facevae.callbacks.latent_analysis import LatentAnalysis
from facevae.callbacks.statistics import KLPerDimChart, MeanFaceBaseline

__all__ = [
    "CheckpointMetadata",
    "KLPerDimChart",
    "LatentAnalysis",
    "MeanFaceBaseline",
    "PriorSamples",
    "ReconstructionGrid",
]
