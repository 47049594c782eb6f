"""What gets logged while training: image grids, KL per dimension, the mean-face baseline, checkpoint metadata;
and what makes a resumed run continue exactly (per-step seeds, the best checkpoint so far).

Callbacks that need an encoder skip a model without one (the WGAN) with one log line."""

from facevae.callbacks.checkpoint_metadata import CheckpointMetadata
from facevae.callbacks.images import PriorInterpolation, PriorSamples, ReconstructionGrid
from facevae.callbacks.latent_analysis import LatentAnalysis
from facevae.callbacks.resumption import AdoptBestCheckpoint, StepSeeds
from facevae.callbacks.schedule import ValidateLastEpoch
from facevae.callbacks.statistics import KLPerDimChart, MeanFaceBaseline

__all__ = [
    "AdoptBestCheckpoint",
    "CheckpointMetadata",
    "KLPerDimChart",
    "LatentAnalysis",
    "MeanFaceBaseline",
    "PriorInterpolation",
    "PriorSamples",
    "ReconstructionGrid",
    "StepSeeds",
    "ValidateLastEpoch",
]
