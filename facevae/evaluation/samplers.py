"""evaluate.py's samples section: N(0, I) and the sampler fitted to the training codes, judged the same way.

For each sampler, n_samples decoded codes (numpy seed `seed`): the face rate, diversity and memorisation of
`facevae.metrics.samples.sample_statistics`, and the precision, recall, density, coverage and Fréchet distance of
`sample_quality`, each beside its real reference (and, for the default sampler, `_recon`: the decoder's
reconstructions of those real crops, what any sampler of this decoder can reach). The default sampler
(`sampler=fitted|prior`) gets the plain keys (`sample_precision`, `sample_face_rate`, `diversity_ratio`, ...);
the other one the same keys under its name
(`prior_sample_precision`, `prior_diversity_ratio`, ... or `fitted_...`). The fitted mixture is saved as
sampler.npz beside metrics.json, and samples.png shows both samplers side by side.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facevae.core.errors import FaceVAEError
from facevae.metrics import samples as sm
from facevae.metrics.sample_quality import QualityReference, quality_reference, sample_quality
from facevae.models.inference import decode_latents
from facevae.models.latent_sampler import GaussianMixtureSampler, fit_gaussian_mixture
from facevae.plots.samples import SamplerPanel, sampler_title_line, samples_figure

log = logging.getLogger(__name__)

SAMPLERS = ("prior", "fitted")
NAMES = {"prior": "z ~ N(0, I)", "fitted": "z ~ Gaussian mixture fitted to the training codes"}


@dataclass
class SamplerResult:
    metrics: dict  # keys for metrics.json
    panels: dict[str, SamplerPanel]  # by sampler, for samples.png
    fitted: GaussianMixtureSampler


def check_sampler(name: str) -> str:
    if name not in SAMPLERS:
        raise FaceVAEError(f"sampler={name}: use prior (z ~ N(0, I)) or fitted (a mixture fitted to the codes)")
    return name


def evaluate_samplers(
    model, train_mu: np.ndarray, val_mu: np.ndarray, images: dict[str, np.ndarray], n: int, seed: int, default: str
) -> SamplerResult:
    """Both samplers against `images`: "train", "test", "recon" (the test crops' reconstructions) and
    "train_recon" (the training crops')."""
    check_sampler(default)
    fitted = fit_gaussian_mixture(train_mu, val_mu, seed=seed)
    log.info("sampler fitted to %d training codes: %d Gaussian components", len(train_mu), len(fitted.weights))
    codes = {
        "prior": np.random.default_rng(seed).standard_normal((n, train_mu.shape[1])).astype(np.float32),
        "fitted": fitted.sample(n, seed),
    }
    decoded = {name: decode_latents(model, z) for name, z in codes.items()}
    stats = sm.sample_statistics(decoded[default], images["test"], images["train"], heldout_recon=images["recon"])
    reference = quality_reference(images["train"], images["test"], n, seed)
    stats.update(sample_quality(reference, decoded[default], images["train_recon"]).as_metrics("sample"))
    other = "prior" if default == "fitted" else "fitted"
    stats.update(_other_sampler(decoded[other], images["train"], reference, stats, other))
    stats.update(sampler=default, sampler_components=len(fitted.weights))
    panels = {}
    for name in SAMPLERS:
        prefix = "sample" if name == default else f"{name}_sample"
        panels[name] = sampler_panel(
            f"{NAMES[name]}{' (the default)' if name == default else ''}",
            decoded[name][:16],
            sampler_title_line(stats, prefix),
            images["train"],
        )
    return SamplerResult(stats, panels, fitted)


def _other_sampler(images: np.ndarray, train: np.ndarray, reference: QualityReference, stats: dict, name: str) -> dict:
    """The non-default sampler's measures, under its name: `prior_sample_face_rate`, `prior_diversity_ratio`..."""
    one = sm.image_set_statistics(images, train, name=name)
    out = {f"{name}_sample_{k}": v for k, v in one.items()}
    out[f"{name}_diversity_ratio"] = one["diversity"] / stats["heldout_diversity"]
    out[f"{name}_memorisation_ratio"] = one["nn_train_distance"] / stats["heldout_nn_train_distance"]
    out.update(sample_quality(reference, images).as_metrics(f"{name}_sample"))
    return out


def sampler_panel(name: str, shown: np.ndarray, verdict: str, train: np.ndarray) -> SamplerPanel:
    """A column of samples.png: the samples shown, each with its nearest training crop."""
    distance, rows = sm.nearest_training_crops(shown, train)
    return SamplerPanel(name, shown, verdict, distance, rows)


def write_samplers(result: SamplerResult, train: np.ndarray, stats: dict, out: Path) -> None:
    """sampler.npz and samples.png (N(0, I) left, the fitted sampler right)."""
    result.fitted.save(out / "sampler.npz")
    panels = [result.panels[name] for name in SAMPLERS]
    samples_figure(panels, train, out / "samples.png", reference_distance=stats["heldout_nn_train_distance"])
