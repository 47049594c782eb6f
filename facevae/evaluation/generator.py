"""What evaluate.py computes for a model that generates but does not encode (the WGAN-GP baseline), and the sample
measures every model shares, so that a beta-VAE and a GAN compare on the same numbers.

The shared measures are the seed's checks of generated images (Sullivan, section 2.2), computed the same way for
any model with `decode(z)` from the same prior draws (numpy seed `seed`):

    samples        `sample_statistics` of n prior samples against the held-out test crops and the training crops:
                   sample_face_rate, sample_diversity, diversity_ratio (mode collapse), sample_nn_train_distance,
                   memorisation_ratio (copied training frames), and the held-out references beside them; and
                   `sample_quality`'s precision, recall, density, coverage and Fréchet distance, each with its real
                   reference (`_real`) and bootstrap interval (`_ci`)
    interpolation  the three-point grid between three prior draws (`three_point_grid`), as in the seed's WGAN
                   figure, and how evenly it changes (`path_smoothness`): interp_smoothness_prior,
                   interp_max_step_prior, interp_corner_distance_prior

The beta-VAE's full evaluation computes the same keys on its own prior samples (facevae.evaluation.analyses); what
needs an encoder (reconstruction, encoded interpolation, traversals by KL, smiles, disentanglement) has no GAN
counterpart.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facevae.core.checkpoint import TrainedRun
from facevae.data.datamodule import FaceCropDataModule
from facevae.evaluation.samplers import sampler_panel
from facevae.metrics.interpolation import path_smoothness
from facevae.metrics.sample_quality import MEASURES as QUALITY_MEASURES
from facevae.metrics.sample_quality import quality_reference, sample_quality
from facevae.metrics.samples import sample_statistics
from facevae.models.inference import prior_grid, prior_samples
from facevae.plots.interpolation import prior_interpolation_figure
from facevae.plots.samples import sampler_title_line, samples_figure

log = logging.getLogger(__name__)

# The numbers every generative model gets, in the order a comparison table shows them.
SHARED_MEASURES = (
    "sample_face_rate",
    "heldout_face_rate",
    "sample_diversity",
    "heldout_diversity",
    "diversity_ratio",
    "sample_nn_train_distance",
    "heldout_nn_train_distance",
    "memorisation_ratio",
    *(f"sample_{m}{end}" for m in QUALITY_MEASURES for end in ("", "_real", "_ci")),
    "interp_smoothness_prior",
    "interp_max_step_prior",
    "interp_corner_distance_prior",
)
GRID = 8  # the interpolation grid is GRID x GRID, as the beta-VAE's evaluation draws it


def sample_measures(
    model, train: np.ndarray, heldout: np.ndarray, n_samples: int = 1000, seed: int = 0, out: Path | None = None
) -> dict[str, float]:
    """The SHARED_MEASURES of `model` (anything with decode(z) and hparams.latent_dim); with `out`, also
    samples.png (16 samples over their nearest training crops) and interpolation.png there."""
    _, sampled = prior_samples(model, n_samples, seed)
    stats = sample_statistics(sampled, heldout, train)
    stats.update(sample_quality(quality_reference(train, heldout, n_samples, seed), sampled).as_metrics("sample"))
    grid = prior_grid(model, seed, GRID)
    stats.update({f"interp_{k}_prior": v for k, v in path_smoothness(grid, GRID).items()})
    if out is not None:
        panel = sampler_panel("z ~ N(0, I)", sampled[:16], sampler_title_line(stats), train)
        samples_figure([panel], train, out / "samples.png", reference_distance=stats["heldout_nn_train_distance"])
        prior_interpolation_figure(grid, stats, sampler_title_line(stats), out / "interpolation.png", GRID)
    return {k: stats[k] for k in SHARED_MEASURES}


def evaluate_generator(run: TrainedRun, dm: FaceCropDataModule, cfg: DictConfig, out: Path) -> dict:
    """evaluate.py's sections that apply to a generator: samples and the prior interpolation grid."""
    if cfg.get("smiles"):
        log.warning(
            "smiles= ignored: the smile analyses encode frames, and %s has no encoder", type(run.model).__name__
        )
    test, train = dm.images("test"), dm.images("train")
    metrics: dict = {"checkpoint": str(run.path), "n_test": len(test), "n_train": len(train)}
    log.info("%d samples: diversity, nearest training neighbours, face detection; interpolation", cfg.n_samples)
    metrics.update(sample_measures(run.model, train, test, int(cfg.n_samples), int(cfg.seed), out))
    return metrics
