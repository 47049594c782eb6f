"""Feature spaces for sample quality: the chosen one ranks flawed sample sets as they should be ranked."""

from __future__ import annotations

import numpy as np
import pytest

from facevae.data.astronaut import astronaut_crops
from facevae.metrics import degraded
from facevae.metrics.features import fit_pixel_pca, random_cnn_features
from facevae.metrics.frechet import frechet_distance
from facevae.metrics.prdc import prdc


@pytest.fixture(scope="module")
def crops() -> tuple[np.ndarray, np.ndarray]:
    """Jittered astronaut crops: 'training' and 'held-out' sets of one person, as the crop cache cuts them."""
    return astronaut_crops(240, seed=0), astronaut_crops(120, seed=1)


@pytest.fixture(scope="module")
def clip_crops(long_clip, tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    """The 12-second demo clip's crops: its first 8 s for training, its last 4 s held out, as a time split would.
    Expressions and pose drift, so, as on real data, not every training frame looks like a held-out one."""
    from facevae.data.cache import load_cache
    from facevae.data.extract import ExtractionParams, prepare_cache

    result = prepare_cache(long_clip, tmp_path_factory.mktemp("cache"), ExtractionParams(), progress=False)
    crops = np.asarray(load_cache(result.path).crops)
    cut = 2 * len(crops) // 3
    return crops[:cut], crops[cut:]


def scores_in(space, heldout: np.ndarray, sets: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    real = space(heldout)
    return {
        name: {**vars(prdc(real, f)), "fd": frechet_distance(real, f)}
        for name, f in ((name, space(images)) for name, images in sets.items())
    }


def test_random_cnn_features_rank_every_flawed_set_below_real_crops(clip_crops):
    train, heldout = clip_crops
    scores = scores_in(random_cnn_features, heldout, {"real": train, **degraded.degraded_sets(train)})
    broken = [rule for rule, margin in degraded.ranking_margins(scores) if margin <= 0]
    assert broken == []
    assert scores["another person"]["precision"] < 0.5 * scores["real"]["precision"]


def test_random_cnn_features_are_deterministic_and_seeded(crops):
    train, _ = crops
    a, b = random_cnn_features(train[:8], seed=0), random_cnn_features(train[:8], seed=0)
    assert np.array_equal(a, b) and a.shape == (8, 2048)
    assert not np.allclose(a, random_cnn_features(train[:8], seed=1))


def test_pixel_pca_whitens_the_training_crops(crops):
    train, _ = crops
    features = fit_pixel_pca(train, n_components=16)(train)
    np.testing.assert_allclose(features.mean(axis=0), 0, atol=1e-8)
    np.testing.assert_allclose(features.var(axis=0, ddof=1), 1, rtol=1e-6)


def test_flawed_sets_keep_the_crops_shape_and_type(crops):
    train, _ = crops
    for name, images in degraded.degraded_sets(train[:20]).items():
        assert images.shape == train[:20].shape and images.dtype == np.uint8, name
    assert len(np.unique(degraded.one_face(train[:20]).reshape(20, -1), axis=0)) == 1
    assert len(np.unique(degraded.copied_frames(train[:20], 4).reshape(20, -1), axis=0)) == 4
