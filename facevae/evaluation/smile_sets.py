"""The smiling frames and the others that the smile analyses and the expression shift share.

The smiling group is the `smiles=` set (a video or photo folder, through the same extraction) or, without one, the
video's own smiling frames. The video's own frames are labelled first (`_video_labels`), so that a frame that
smiles never counts among the "others": by the data's smile factor when it has one, else from the smiles set
(against the `neutral=` set when given, else positive-unlabelled: facevae.metrics.smile_labels).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig

from facevae.core.errors import FaceVAEError
from facevae.data.datamodule import FaceCropDataModule
from facevae.data.split import cv_groups
from facevae.evaluation.context import Evaluation, ExtraSet
from facevae.metrics import smile_labels as sl
from facevae.metrics.samples import spread_indices
from facevae.metrics.smile_labels import SmileLabels
from facevae.metrics.smiles import blockwise_auc, disjoint_blocks
from facevae.models.inference import encode_images

log = logging.getLogger(__name__)


@dataclass
class SmileSets:
    """The video's labels; the pool of frames the grouping uses (`smile_frames`), the held-out frames, the time
    groups of every frame; the others (pool frames labelled not smiling) and the smiles (codes, crops, groups
    numbered apart from the video's when they are a separate set), and the line the figures' titles carry."""

    labels: SmileLabels
    pool: np.ndarray
    held: np.ndarray
    groups: np.ndarray
    grouping: str
    other: np.ndarray
    mu_smile: np.ndarray
    smile_images: np.ndarray
    smile_groups: np.ndarray
    smile_grouping: str
    note: str

    @property
    def enough(self) -> bool:
        """At least 5 of each group: fewer leave the grouping scores and the shift meaningless."""
        return len(self.mu_smile) >= 5 and len(self.other) >= 5


def smile_sets(ev: Evaluation) -> SmileSets | None:
    """The sets from a `smiles=` set or the data's own smile factor (None without either), made once per evaluation
    and kept in `ev.shared`."""
    if "smile_sets" not in ev.shared:
        ev.shared["smile_sets"] = _smile_sets(ev)
    return ev.shared["smile_sets"]


def _smile_sets(ev: Evaluation) -> SmileSets | None:
    dm, cfg, mu, smiles = ev.dm, ev.cfg, ev.mu, ev.smiles
    held = np.sort(np.concatenate([dm.rows("val"), dm.rows("test")]))
    # Held-out frames alone are two blocks of the 3-minute demo: too few blocks of time for a blockwise AUC.
    # By default the grouping uses every frame, with the probe still trained and tested on different groups.
    pool = held if cfg.smile_frames == "heldout" else np.flatnonzero(dm.labels >= 0)
    groups, grouping = cv_groups(dm.data.frames["time_s"].to_numpy(), cfg.smile_block_s)
    labels = _video_labels(dm, cfg, smiles, ev.neutral, groups)
    if labels is None:
        log.info("no smiles: pass smiles=PATH (a video or photo folder of smiling faces) for the smile analyses")
        return None
    other = pool[labels.labels[pool] == 0]
    if smiles is not None:
        mu_smile, _ = encode_images(ev.model, smiles.crops)
        # A separate set's groups are numbered after the video's, so no group is on both sides of a fold.
        smile_images, smile_groups, smile_grouping = (
            smiles.crops,
            disjoint_blocks(smiles.groups, groups),
            smiles.grouping,
        )
    else:
        smiling = pool[labels.labels[pool] == 1]
        mu_smile, smile_images, smile_groups, smile_grouping = (
            mu[smiling],
            dm.data.crops[smiling],
            groups[smiling],
            grouping,
        )
    note = _labels_note(labels, smiles)
    return SmileSets(
        labels, pool, held, groups, grouping, other, mu_smile, smile_images, smile_groups, smile_grouping, note
    )


def _video_labels(
    dm: FaceCropDataModule, cfg: DictConfig, smiles: ExtraSet | None, neutral: ExtraSet | None, groups: np.ndarray
) -> SmileLabels | None:
    """Which of the video's frames smile: its smile factor if it has one, else labelled from the smiles set
    (against a neutral set when given, else positive-unlabelled against the video itself)."""
    names = dm.factor_names
    if "smile" in names:
        factor = dm.data.factors()[:, names.index("smile")]
        rule = f"smile factor > {cfg.smile_threshold:g} (not smiling < 0.2)"
        return SmileLabels(sl.smile_labels_from_factor(factor, cfg.smile_threshold), factor, rule)
    if smiles is None:
        return None
    try:
        if neutral is not None:
            return sl.label_by_classifier(dm.data.crops, smiles.crops, neutral.crops)
        return sl.label_by_pu(dm.data.crops, smiles.crops, groups, smiles.groups)
    except ValueError as err:
        raise FaceVAEError(f"{smiles.path}: the video's own smiles could not be told apart ({err})") from None


# Frames the smile cascade checks the labels on, spread over the video: the cascade takes about 10 ms a crop on one
# core, and an AUC over 400 frames is within a few hundredths of the whole video's.
CASCADE_FRAMES = 400


def label_report(labels: SmileLabels, dm: FaceCropDataModule, pool: np.ndarray) -> dict:
    """The rule, how many frames it called smiling and not, and how far the smile cascade agrees with it (on at most
    CASCADE_FRAMES of the pool, spread evenly over time)."""
    checked = pool[spread_indices(len(pool), CASCADE_FRAMES)]
    votes = sl.smile_cascade_votes(dm.data.crops[checked])
    return {
        "smile_label_rule": labels.rule,
        "n_video_smiling": labels.n_smiling,
        "n_video_not_smiling": labels.n_not_smiling,
        "n_video_frames": len(labels.labels),
        "smile_label_cascade_auc": sl.cascade_agreement(labels.labels[checked], votes),
    }


def _labels_note(labels: SmileLabels, smiles: ExtraSet | None) -> str:
    source = f"smiles: {smiles.path.name}; " if smiles is not None else ""
    return (
        f"{source}the video's frames labelled by {labels.rule}: {labels.n_smiling} of {len(labels.labels)} "
        f"smiling, {labels.n_not_smiling} not smiling (the others start the shift)"
    )


def in_video_auc(mu: np.ndarray, labels: SmileLabels, pool: np.ndarray, groups: np.ndarray, seed: int) -> dict:
    """With a separate smiles set, the AUC of the video's own smiling frames against its non-smiling ones too: a
    separate set also differs in session (light, framing), which the in-video AUC does not reward."""
    rows = pool[labels.labels[pool] >= 0]
    try:
        return {"smile_auc_in_video": blockwise_auc(mu[rows], labels.labels[rows], groups[rows], seed=seed)}
    except ValueError as err:
        log.info("smile_auc_in_video left out: %s", err)
        return {}
