"""What moving a face toward a smile in latent space changed, measured on the decoded faces.

Every measure compares the decoded end of a path (t=1) with its decoded start (t=0, the reconstruction) rather than
with the input, so the model's reconstruction error does not count as change. The references: the same scorer on
the start frames' and the real smiles' reconstructions (how far a shift should go: `shift_smile_progress` is the
share of that way it went), on the real crops (`_of_real`: where the shifted faces land between the real start
frames and the real smiles), and the pixel change outside the mouth (a smile changes
the mouth, not the rest: `mouth_mask`). Sullivan, "Analysis and Modification of Encoded Single User Facial
Expression Data", section 2.2; the paths are facevae.models.latent_paths', the judges facevae.metrics.pixel_scorers'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from facevae.metrics.pixel_scorers import ImageScorer
from facevae.metrics.samples import spread_indices

PATH_KINDS = ("centroid", "normal", "conditional")
CASCADE_SMILES = 128
SUFFIX = {"centroid": "", "normal": "_normal", "conditional": "_conditional"}


def mouth_mask(
    size: int = 64, rows: tuple[float, float] = (0.5, 0.95), cols: tuple[float, float] = (0.12, 0.88)
) -> np.ndarray:
    """bool size x size mask of the mouth region of a face crop: `rows` and `cols` as shares of the side.

    The defaults fit the project's tight crops (conf/data/faces.yaml: crop_scale 0.8, crop_shift_y 0.08). On 80
    frames of the demo video re-rendered at smile 0 and 1 with everything else kept, and cropped by the same
    boxes, the region holds 88% (at least 79%) of the pixel change a smile makes in a third of the crop; the
    narrower rows 0.55-0.95, columns 0.2-0.8 hold 72%, missing the mouth's corners and the lifted cheeks.
    """
    mask = np.zeros((size, size), bool)
    mask[round(rows[0] * size) : round(rows[1] * size), round(cols[0] * size) : round(cols[1] * size)] = True
    return mask


def _scores(scorer: ImageScorer, images: np.ndarray) -> np.ndarray:
    """Scores of N x S x H x W x 3 path images -> N x S."""
    n, s = images.shape[:2]
    return np.asarray(scorer(images.reshape(n * s, *images.shape[2:])), np.float64).reshape(n, s)


def _region_change(images: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean absolute change from the first to the last step on [0, 1] pixels -> (inside mask, outside)."""
    change = np.abs(images[:, -1].astype(np.float64) - images[:, 0].astype(np.float64)).mean(axis=-1) / 255.0
    return float(change[:, mask].mean()), float(change[:, ~mask].mean())


def _progress(gain: float, span: float | None) -> float | None:
    """The gain as a share of the way from the start frames' reconstructions to the real smiles' reconstructions."""
    return gain / span if span else None


def _reach(end_score: float, reference: ShiftReferences) -> float | None:
    """Where the shifted faces' score lands between the real start frames (0) and the real smiles (1)."""
    span = reference.real_span
    return (end_score - reference.start_input) / span if span else None


@dataclass
class ShiftReferences:
    """The smile scorer (and cascade) on the real and reconstructed start frames and smiles: where a shift starts
    and what it should reach. The smiles' entries are None without a smile set."""

    start_input: float
    start_recon: float
    smiling_recon: float | None = None
    smiling_input: float | None = None
    cascade_start_recon: float | None = None
    cascade_smiling_recon: float | None = None

    @property
    def score_span(self) -> float | None:
        return None if self.smiling_recon is None else self.smiling_recon - self.start_recon

    @property
    def real_span(self) -> float | None:
        return None if self.smiling_input is None else self.smiling_input - self.start_input

    @property
    def cascade_span(self) -> float | None:
        if self.cascade_smiling_recon is None or self.cascade_start_recon is None:
            return None
        return self.cascade_smiling_recon - self.cascade_start_recon


def shift_references(
    scorer: ImageScorer,
    images_start: np.ndarray,
    start_recon: np.ndarray,
    images_smile: np.ndarray | None = None,
    smile_recon: np.ndarray | None = None,
    cascade: ImageScorer | None = None,
) -> ShiftReferences:
    """`ShiftReferences` from the start frames and (optionally) the real smiles, each with its reconstructions."""
    ref = ShiftReferences(float(np.mean(scorer(np.asarray(images_start)))), float(np.mean(scorer(start_recon))))
    if images_smile is None or not len(images_smile):
        return ref
    ref.smiling_recon = float(np.mean(scorer(smile_recon)))
    ref.smiling_input = float(np.mean(scorer(np.asarray(images_smile))))
    if cascade is not None:
        # The cascade's mean over at most CASCADE_SMILES of the smiles, spread over them: about 10 ms a crop.
        ref.cascade_smiling_recon = float(
            np.mean(cascade(smile_recon[spread_indices(len(smile_recon), CASCADE_SMILES)]))
        )
        ref.cascade_start_recon = float(np.mean(cascade(start_recon)))
    return ref


@dataclass
class PathMeasures:
    """What changed along one kind of path from t=0 to t=1, averaged over the start frames.

    smile_gain: the scorer's mean at t=1 minus at t=0; smile_progress: as a share of the way from the start frames'
    reconstructions to the real smiles' reconstructions; smile_progress_of_real: where the scorer's mean at t=1
    lands on the way from the real start frames (0) to the real smiles (1), so what the decoder loses of a smile
    counts against it. mouth_change, outside_mouth_change: mean
    |pixel change| (0-1) inside and outside `mouth_mask`, and their ratio. cascade_*: the same for the independent
    measure (None without one). other_factor_change[_sd]: {factor: mean |change| of its regressor's value[, in
    standard deviations]} (None without regressors).
    """

    smile_score: list[float]  # the scorer's mean at each step
    smile_gain: float
    mouth_change: float
    outside_mouth_change: float
    mouth_ratio: float | None
    smile_progress: float | None
    smile_progress_of_real: float | None
    cascade_gain: float | None = None
    cascade_progress: float | None = None
    other_factor_change: dict[str, float] | None = None
    other_factor_change_sd: dict[str, float] | None = None

    def metrics(self, kind: str) -> dict:
        """The metrics.json keys of this kind of path (no suffix for the centroid path, "_normal", "_conditional")."""
        out = {
            "shift_smile_gain": self.smile_gain,
            "shift_mouth_change": self.mouth_change,
            "shift_outside_mouth_change": self.outside_mouth_change,
            "shift_mouth_ratio": self.mouth_ratio,
            "shift_smile_progress": self.smile_progress,
            "shift_smile_progress_of_real": self.smile_progress_of_real,
        }
        if self.cascade_gain is not None:
            out.update(shift_cascade_gain=self.cascade_gain, shift_cascade_progress=self.cascade_progress)
        if self.other_factor_change is not None:
            out["shift_other_factor_change"] = self.other_factor_change
            out["shift_other_factor_change_sd"] = self.other_factor_change_sd
        return {f"{key}{SUFFIX[kind]}": value for key, value in out.items()}


def path_measures(
    images: np.ndarray,
    scorer: ImageScorer,
    reference: ShiftReferences,
    others: Mapping[str, ImageScorer] | None = None,
    cascade: ImageScorer | None = None,
) -> PathMeasures:
    """`PathMeasures` of decoded paths `images` (uint8 N x S x H x W x 3, t=0 first)."""
    score = _scores(scorer, images)
    mouth, outside = _region_change(images, mouth_mask(images.shape[2]))
    gain = float(score[:, -1].mean() - score[:, 0].mean())
    out = PathMeasures(
        score.mean(axis=0).tolist(),
        gain,
        mouth,
        outside,
        mouth / outside if outside > 0 else None,
        _progress(gain, reference.score_span),
        _reach(float(score[:, -1].mean()), reference),
    )
    if cascade is not None:
        votes = _scores(cascade, images[:, [0, -1]])
        out.cascade_gain = float(votes[:, 1].mean() - votes[:, 0].mean())
        out.cascade_progress = _progress(out.cascade_gain, reference.cascade_span)
    if others:
        ends = images[:, [0, -1]]
        change = {name: float(np.abs(np.diff(_scores(r, ends), axis=1)).mean()) for name, r in others.items()}
        sds = {name: getattr(r, "target_sd", None) for name, r in others.items()}
        out.other_factor_change = change
        out.other_factor_change_sd = {name: change[name] / sd for name, sd in sds.items() if sd}
    return out


@dataclass
class ShiftPath:
    """One kind of path from every start frame: its codes (N x S x D), decoded faces (uint8 N x S x H x W x 3) and
    what changed along it."""

    latents: np.ndarray
    images: np.ndarray
    measures: PathMeasures


@dataclass
class ShiftResult:
    """The expression shift: each kind of path (`paths`, in the order drawn), their mean lengths, the gains at one
    distance from the start on every kind (the shortest kind's mean length, `equal_distance`), the references, and
    the other factors' regressors' held-out R^2 (None without them)."""

    steps: np.ndarray
    paths: dict[str, ShiftPath]
    path_length: dict[str, float]
    equal_distance: float
    gain_equal_distance: dict[str, float]
    references: ShiftReferences
    n_frames: int
    start_score_recon: float  # the scorer's mean on the start frames' reconstructions, in float64
    other_factor_heldout_r2: dict[str, float] | None = None
    extra: dict = field(default_factory=dict)  # what the pipeline adds: the scorer's score, the frames moved

    @property
    def kinds(self) -> list[str]:
        return list(self.paths)

    def metrics(self) -> dict:
        """Every number of the shift as metrics.json holds it."""
        ref = self.references
        out = {
            "shift_n_frames": self.n_frames,
            "shift_path_length": self.path_length,
            "shift_equal_distance": self.equal_distance,
            "shift_smile_gain_equal_distance": self.gain_equal_distance,
            "shift_normal_length": self.path_length["normal"],
            "smile_score_input": ref.start_input,
            "smile_score_smiling": ref.smiling_recon,
            "smile_score_smiling_input": ref.smiling_input,
            "shift_smile_score_start_input": ref.start_input,
            "shift_smile_score_start_recon": self.start_score_recon,
        }
        for kind, path in self.paths.items():
            out.update(path.measures.metrics(kind))
        if self.other_factor_heldout_r2 is not None:
            out["shift_other_factor_heldout_r2"] = self.other_factor_heldout_r2
        if ref.cascade_smiling_recon is not None:
            out["shift_cascade_smiling_recon"] = ref.cascade_smiling_recon
            out["shift_cascade_start_recon"] = ref.cascade_start_recon
        if ref.smiling_recon is not None:
            out["shift_smile_score_smiling_input"] = ref.smiling_input
            out["shift_smile_score_smiling_recon"] = ref.smiling_recon
        return {**out, **self.extra}
