"""One generated set scored against held-out real crops, beside the same scores of a real set: the reference.

For every measure (`prdc`'s four and the Fréchet distance) three numbers: the value for the generated set, the
value for a real set in its place (training crops against the same held-out crops: what a perfect generator
reaches, since held-out frames are new frames of the same person), and a bootstrap 95% interval of the value
(for precision, recall, density and coverage the 2.5th and 97.5th percentiles over resamples,
`prdc_bootstrap`; for the Fréchet distance the bias-shifted interval of `frechet_bootstrap`). Sizes matter to
all five, so the caller gives the generated and the real set the same number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facevae.metrics.frechet import frechet_bootstrap
from facevae.metrics.prdc import DEFAULT_K, prdc_bootstrap

MEASURES = ("precision", "recall", "density", "coverage", "fd")


@dataclass(frozen=True)
class SetScores:
    """One set's measures against the held-out crops, with their 95% bootstrap intervals."""

    values: dict[str, float]
    ci: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class SampleQuality:
    """A generated set's scores beside a real set's: `as_metrics` gives metrics.json's keys."""

    generated: SetScores
    real: SetScores
    recon: SetScores | None = None  # the model's reconstructions of the real set: what its decoder reaches

    def as_metrics(self, prefix: str = "sample") -> dict[str, float | list[float]]:
        out: dict[str, float | list[float]] = {}
        for m in MEASURES:
            out[f"{prefix}_{m}"] = self.generated.values[m]
            out[f"{prefix}_{m}_real"] = self.real.values[m]
            out[f"{prefix}_{m}_ci"] = list(self.generated.ci[m])
            if self.recon is not None:
                out[f"{prefix}_{m}_recon"] = self.recon.values[m]
        return out


def set_scores(
    heldout: np.ndarray, generated: np.ndarray, k: int = DEFAULT_K, n_boot: int = 200, seed: int = 0
) -> SetScores:
    """PRDC and Fréchet distance of `generated` against `heldout` features (rows), with bootstrap intervals."""
    point, boots = prdc_bootstrap(heldout, generated, k, n_boot, seed)
    fd, fd_ci = frechet_bootstrap(heldout, generated, n_boot, seed)
    values = {**vars(point), "fd": fd}
    ci = {m: tuple(float(q) for q in np.percentile([getattr(b, m) for b in boots], [2.5, 97.5])) for m in vars(point)}
    return SetScores(values, {**ci, "fd": (float(fd_ci[0]), float(fd_ci[1]))})
