"""How well a model reconstructs held-out frames: PSNR and SSIM per frame and over the set, ELBO, KL, active units.

Computed from facevae.models.inference.reconstruction_terms; every score reads beside the mean training face's PSNR
(facevae.metrics.psnr.mean_face_psnr), the baseline a model that learnt nothing reaches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facevae.metrics.latent_stats import active_units
from facevae.metrics.psnr import set_psnr
from facevae.models.inference import ReconstructionTerms
from facevae.models.kl_per_dim import ACTIVE_KL_NATS  # the training module's `active_units_kl` counts the same way


@dataclass
class ReconstructionScores:
    """The scores of one set of frames (`metrics()`: the keys of metrics.json) and the per-frame PSNR (dB) and SSIM
    behind them, for the figure."""

    scores: dict
    psnr_per_frame: np.ndarray
    ssim_per_frame: np.ndarray

    def metrics(self) -> dict:
        return dict(self.scores)


def psnr_from_mse(mse: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """10 log10(data_range^2 / MSE) per frame, in dB; a frame reproduced exactly gives inf. Reference: the usual
    definition, as skimage.metrics.peak_signal_noise_ratio (per image, not per batch)."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / np.asarray(mse, np.float64))


def reconstruction_scores(terms: ReconstructionTerms) -> ReconstructionScores:
    """PSNR and SSIM compare each input with the decoder mean at the posterior mean, on [0, 1] with data_range=1.

    `psnr` is the set's PSNR from the MSE over every pixel of every frame, as train.py's test/psnr
    (`facevae.metrics.psnr`); `psnr_frame_mean`, `psnr_median` and `psnr_p05` summarise the per-frame PSNRs.
    The negative ELBO is the beta=1 bound -E_q[log p(x|z)] + KL with one z ~ q(z|x) per image, in nats per image
    (Kingma & Welling 2014); active units after Burda et al. 2016 (`active_units`), and by KL above ACTIVE_KL_NATS.
    """
    psnr = psnr_from_mse(terms.mse)
    kl_dims = terms.kl.mean(axis=0)
    scores = {
        "psnr": set_psnr(10.0 ** (-psnr / 10.0)),
        "psnr_frame_mean": float(psnr.mean()),
        "psnr_median": float(np.median(psnr)),
        "psnr_p05": float(np.percentile(psnr, 5)),
        "ssim": float(terms.ssim.mean()),
        "ssim_median": float(np.median(terms.ssim)),
        "ssim_p05": float(np.percentile(terms.ssim, 5)),
        "neg_elbo": float((terms.nll + terms.kl.sum(axis=1)).mean()),
        "recon_nll": float(terms.nll.mean()),
        "kl": float(terms.kl.sum(axis=1).mean()),
        "kl_per_dim": [float(v) for v in kl_dims],
        "active_units": int(active_units(terms.mu)),
        "active_units_kl": int((kl_dims > ACTIVE_KL_NATS).sum()),
        "n_frames": int(len(terms.mse)),
    }
    return ReconstructionScores(scores, psnr, terms.ssim)
