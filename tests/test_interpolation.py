"""Known answers for the interpolation paths and the corner choice, and a smoke test of interpolation.png."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import module_of

from facevae.metrics.interpolation import interpolation_scores, path_smoothness
from facevae.models.inference import decode_interpolations
from facevae.models.latent_paths import lerp, pick_corners, slerp, three_point_grid
from facevae.models.lit_beta_vae import BetaVAEModule
from facevae.plots.interpolation import interpolation_figure


def test_three_point_grid_hits_the_corners_and_is_affine():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 5))
    n = 6
    grid = three_point_grid(a, b, c, n=n)
    assert grid.shape == (n * n, 5)
    assert np.array_equal(grid[0], a) and np.array_equal(grid[n - 1], b) and np.array_equal(grid[n * (n - 1)], c)
    np.testing.assert_allclose(grid[-1], b + c - a, atol=1e-12)
    t = np.linspace(0, 1, n)
    for i in range(n):
        for j in range(n):
            np.testing.assert_allclose(grid[i * n + j], a + t[j] * (b - a) + t[i] * (c - a), atol=1e-12)
    # Affine: second differences vanish along rows and columns.
    cube = grid.reshape(n, n, 5)
    assert np.abs(np.diff(cube, 2, axis=0)).max() < 1e-12
    assert np.abs(np.diff(cube, 2, axis=1)).max() < 1e-12


def test_lerp_ends_and_midpoint():
    z0, z1 = np.array([1.0, -2.0, 3.0]), np.array([-1.0, 0.0, 5.0])
    path = lerp(z0, z1, 5)
    assert np.array_equal(path[0], z0) and np.array_equal(path[-1], z1)
    np.testing.assert_allclose(path[2], (z0 + z1) / 2)


def test_slerp_keeps_the_norm_and_the_ends():
    rng = np.random.default_rng(1)
    z0, z1 = rng.normal(size=(2, 32))
    z1 *= np.linalg.norm(z0) / np.linalg.norm(z1)
    path = slerp(z0, z1, 9)
    assert np.array_equal(path[0], z0) and np.array_equal(path[-1], z1)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(z0), rtol=1e-10)
    # Evenly spaced angles: every step turns the same amount.
    cos = np.sum(path[1:] * path[:-1], axis=1) / np.linalg.norm(z0) ** 2
    np.testing.assert_allclose(cos, cos[0], rtol=1e-10)


def test_slerp_and_lerp_differ_in_the_middle_only():
    z0, z1 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    s, line = slerp(z0, z1, 3), lerp(z0, z1, 3)
    np.testing.assert_allclose(s[1], [np.sqrt(0.5), np.sqrt(0.5)])
    np.testing.assert_allclose(line[1], [0.5, 0.5])
    assert np.array_equal(s[[0, -1]], line[[0, -1]])


def test_slerp_falls_back_to_lerp_when_parallel():
    z0 = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(slerp(z0, 2 * z0, 4), lerp(z0, 2 * z0, 4))
    np.testing.assert_allclose(slerp(np.zeros(3), z0, 4), lerp(np.zeros(3), z0, 4))


def test_pick_corners_takes_one_frame_from_each_far_cluster():
    rng = np.random.default_rng(2)
    vertices = np.array([[10.0, 0, 0, 0], [0, 10.0, 0, 0], [0, 0, 10.0, 0]])
    mu = np.concatenate([v + rng.normal(scale=0.3, size=(60, 4)) for v in vertices])
    picks = pick_corners(mu, seed=0)
    assert sorted(picks // 60) == [0, 1, 2]
    assert np.array_equal(picks, pick_corners(mu, seed=0))


def test_pick_corners_leaves_out_outliers():
    rng = np.random.default_rng(3)
    mu = np.concatenate([rng.normal(size=(200, 8)), [[100.0] * 8]])
    assert 200 not in pick_corners(mu, seed=np.random.default_rng(0))


def test_path_smoothness_of_a_cross_fade_and_of_a_jump():
    n = 5
    rng = np.random.default_rng(4)
    a, b, c = rng.uniform(0.2, 0.8, size=(3, 8, 8, 3))
    t = np.linspace(0, 1, n)
    fade = np.stack([a + u * (b - a) + v * (c - a) for v in t for u in t])
    out = path_smoothness(fade, n)
    assert out["smoothness"] == pytest.approx(1.0)
    assert out["max_step"] == pytest.approx(1.0)
    assert out["corner_distance"] > 0
    # Everything changes between the second and third column: one step carries all of each row's change.
    step = np.stack([a if j < 2 else b for _ in range(n) for j in range(n)])
    jumpy = path_smoothness(step, n)
    assert jumpy["max_step"] > 3


def test_interpolation_figure_writes_a_readable_png(tmp_path):
    torch.manual_seed(0)
    model = module_of(BetaVAEModule)
    rng = np.random.default_rng(5)
    corners = rng.normal(size=(3, 32))
    crops = rng.integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)
    path = tmp_path / "figures" / "interpolation.png"
    grids, strips = decode_interpolations(model, {"encoded": corners, "prior": rng.normal(size=(3, 32))}, 4, 5)
    stats = interpolation_scores(grids, strips, 4)
    interpolation_figure(grids, strips, stats, crops, path=path)
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 600 and image.shape[1] > 800
    assert {"interp_smoothness_encoded", "interp_smoothness_prior", "interp_max_step_prior"} <= stats.keys()
    assert all(np.isfinite(v) for v in stats.values())
