"""Face detection on real and fake crops, the diversity and memorisation numbers, and samples.png."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import module_of

from facevae.data.astronaut import astronaut_crops
from facevae.evaluation.samplers import sampler_panel
from facevae.metrics.samples import face_detection_rate, nearest_training_crops, sample_statistics, spread_indices
from facevae.models.inference import prior_samples
from facevae.models.lit_beta_vae import BetaVAEModule
from facevae.plots.samples import samples_figure


@pytest.fixture(scope="module")
def real_crops() -> np.ndarray:
    return astronaut_crops(60, seed=0)


@pytest.fixture(scope="module")
def model() -> BetaVAEModule:
    torch.manual_seed(0)
    return module_of(BetaVAEModule)


def test_face_detection_rate_is_high_on_real_crops(real_crops):
    assert face_detection_rate(real_crops[:40]) >= 0.9


def test_face_detection_rate_is_zero_on_noise_grey_and_shuffled_pixels(real_crops):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(30, 64, 64, 3), dtype=np.uint8)
    grey = np.full((5, 64, 64, 3), 128, np.uint8)
    shuffled = np.stack([c.reshape(-1, 3)[rng.permutation(64 * 64)].reshape(64, 64, 3) for c in real_crops[:20]])
    assert face_detection_rate(noise) <= 0.05
    assert face_detection_rate(grey) == 0.0
    assert face_detection_rate(shuffled) <= 0.05


def test_statistics_of_identical_sets(real_crops):
    crops = real_crops[:20]
    stats = sample_statistics(crops, crops, crops)
    assert stats["sample_nn_train_distance"] == 0.0 and stats["heldout_nn_train_distance"] == 0.0
    assert stats["diversity_ratio"] == pytest.approx(1.0)
    assert stats["sample_diversity"] > 0
    assert np.isnan(stats["memorisation_ratio"])  # 0 / 0: no reference distance to compare with
    assert stats["sample_face_rate"] == stats["heldout_face_rate"]


def test_copies_of_training_crops_read_as_memorised(real_crops):
    train, heldout = real_crops[:40], real_crops[40:]
    stats = sample_statistics(train[::2], heldout, train, max_faces=5)
    assert stats["heldout_nn_train_distance"] > 0.1
    assert stats["memorisation_ratio"] == pytest.approx(0.0, abs=1e-9)


def test_nearest_training_crops_index_the_full_set_when_subsampled(real_crops):
    train = real_crops[:30]
    distance, index = nearest_training_crops(train[[0, 29]], train, max_train=10)
    assert list(index) == [0, 29]  # spread_indices keeps the first and the last row
    np.testing.assert_allclose(distance, 0.0)
    assert len(spread_indices(1000, 7)) == 7 and spread_indices(5, None).tolist() == list(range(5))


def test_prior_samples_are_deterministic(model):
    z, images = prior_samples(model, n=6, seed=3)
    z2, images2 = prior_samples(model, n=6, seed=3)
    assert z.shape == (6, 32) and images.shape == (6, 64, 64, 3) and images.dtype == np.uint8
    assert np.array_equal(z, z2) and np.array_equal(images, images2)


def test_samples_figure_writes_a_png_with_a_panel_per_sampler(model, real_crops, tmp_path):
    _, samples = prior_samples(model, n=12)
    panels = [
        sampler_panel("z ~ N(0, I)", samples, "FAILS", real_crops),
        sampler_panel("fitted", samples[::-1], "like", real_crops),
    ]
    one = samples_figure(panels[:1], real_crops, tmp_path / "one.png", n=12, reference_distance=1.0)
    two = samples_figure(panels, real_crops, tmp_path / "two.png", n=12, reference_distance=1.0)
    one, two = cv2.imread(str(one)), cv2.imread(str(two))
    assert one is not None and one.shape[0] > 300 and one.shape[1] > 800
    assert two.shape[1] > one.shape[1]  # a second column of samples (the title sets the width of one)
