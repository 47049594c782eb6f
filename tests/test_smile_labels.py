"""Smile labels for the video's own frames, from a separate smiles set, on demo clips whose smiles are known."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from facevae.data.align import AlignParams
from facevae.data.cache import load_cache
from facevae.data.extract import ExtractionParams, prepare_cache
from facevae.data.split import cv_groups
from facevae.data.synthetic import write_demo_video
from facevae.metrics import smile_labels as sl

SIZE = (640, 360)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A 40 s demo video (its true smile factor beside it) and a 9 s clip in which the person smiles throughout."""
    tmp = tmp_path_factory.mktemp("labels")
    params = ExtractionParams(align=AlignParams("eyes+ecc"))
    video = load_cache(
        prepare_cache(write_demo_video(tmp / "me.mp4", 40, seed=3, size=SIZE), tmp / "c", params, False).path
    )
    smiles = load_cache(
        prepare_cache(
            write_demo_video(tmp / "s.mp4", 9, seed=9, smiling=True, size=SIZE), tmp / "c", params, False
        ).path
    )
    return video, smiles


def test_a_short_clip_is_cut_into_stretches_and_photos_are_groups_of_their_own():
    groups, how = cv_groups(np.arange(72) / 8, 10.0)  # a 9 s clip: one 10 s block
    assert len(np.unique(groups)) == 5 and "cut into 5 stretches" in how
    assert np.all(np.diff(groups) >= 0)  # stretches of time, in order
    groups, how = cv_groups(np.arange(14) / 8, 10.0, independent=True)
    assert list(groups) == list(range(14)) and "photos" in how
    groups, how = cv_groups(np.arange(400) / 8, 10.0)
    assert len(np.unique(groups)) == 5 and how == "blocks of 10 s"


def test_the_videos_own_smiles_are_found_from_a_separate_smiles_clip(clips):
    video, smiles = clips
    truth = video.frames["smile"].to_numpy()
    video_groups, _ = cv_groups(video.frames["time_s"].to_numpy(), 10.0)
    smile_groups, _ = cv_groups(smiles.frames["time_s"].to_numpy(), 10.0)
    labels = sl.label_by_pu(np.asarray(video.crops), np.asarray(smiles.crops), video_groups, smile_groups)
    clear = (truth > 0.5) | (truth < 0.2)
    assert roc_auc_score(truth[clear] > 0.5, labels.probability[clear]) > 0.9
    assert labels.n_smiling > 0.5 * np.sum(truth > 0.5)  # most of the video's smiles are found...
    assert np.mean(truth[labels.labels == sl.SMILE] > 0.5) > 0.9  # ...and what is called smiling smiles
    # Nearly no broad smile is left among the frames a shift would start from (all smiles would be 30%).
    not_smiling = truth[labels.labels == sl.NOT_SMILING]
    assert labels.n_not_smiling > 0.3 * len(truth) and np.mean(not_smiling < 0.5) > 0.9
    assert np.mean(not_smiling > 0.75) < 0.03
    assert "PU" in labels.rule and labels.smile_share == pytest.approx(labels.n_smiling / len(truth))


def test_a_neutral_set_labels_by_an_ordinary_classifier(clips):
    video, smiles = clips
    truth = video.frames["smile"].to_numpy()
    neutral = np.asarray(video.crops)[truth < 0.05][::3]  # stand-ins for a separate neutral set
    labels = sl.label_by_classifier(np.asarray(video.crops), np.asarray(smiles.crops), neutral)
    assert "neutral set" in labels.rule
    assert np.mean(truth[labels.labels == sl.NOT_SMILING] < 0.5) > 0.9
    assert np.mean(truth[labels.labels == sl.SMILE] > 0.5) > 0.9


def test_the_smile_cascade_agrees_with_the_true_smiles(clips):
    video, _ = clips
    truth = video.frames["smile"].to_numpy()
    labels = np.where(truth > 0.5, sl.SMILE, np.where(truth < 0.2, sl.NOT_SMILING, sl.NEITHER))
    assert sl.cascade_agreement(labels, sl.smile_cascade_votes(np.asarray(video.crops))) > 0.8
    assert sl.cascade_agreement(np.zeros(5, int), np.arange(5)) is None  # one class: nothing to agree on
