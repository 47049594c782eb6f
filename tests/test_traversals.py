"""Known answers for the traversal codes and the pixel change, and a smoke test of traversals.png."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import module_of

from facevae.metrics.traversals import kl_order, row_pixel_change, traversal_scores
from facevae.models.inference import decode_latents
from facevae.models.latent_paths import traversal_latents
from facevae.models.lit_beta_vae import BetaVAEModule
from facevae.plots.traversals import traversal_figure


def test_traversal_latents_changes_one_dimension_per_row():
    base = np.arange(6, dtype=np.float64) / 10
    dims, values = [4, 1, 0], np.array([-2.0, 0.5, 3.0])
    z = traversal_latents(base, dims, values)
    assert z.shape == (9, 6)
    for r, d in enumerate(dims):
        for k, v in enumerate(values):
            row = z[r * 3 + k]
            assert row[d] == v
            others = np.delete(np.arange(6), d)
            assert np.array_equal(row[others], base[others])


def test_traversal_latents_rejects_a_dimension_out_of_range():
    with pytest.raises(ValueError, match="dims"):
        traversal_latents(np.zeros(4), [4], np.linspace(-1, 1, 3))


def test_row_pixel_change_known_answers():
    flat = np.full((3, 4, 4, 3), 100, np.uint8)
    ramp = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (0, 51, 102)])  # steps of 0.2
    change = row_pixel_change(np.concatenate([flat, ramp]), 3)
    np.testing.assert_allclose(change, [0.0, 0.2])


def test_traversal_figure_orders_by_kl(tmp_path):
    torch.manual_seed(0)
    model = module_of(BetaVAEModule)
    kl = np.zeros(32)
    kl[[7, 3, 20]] = [0.5, 2.0, 1.0]
    path = tmp_path / "traversals.png"
    values = np.linspace(-3, 3, 5)
    order = kl_order(kl, max_dims=6)
    images = decode_latents(model, traversal_latents(np.zeros(32), order, values).astype(np.float32))
    out = traversal_scores(images, order, kl, len(values)).metrics()
    traversal_figure(images, traversal_scores(images, order, kl, len(values)), kl, values, path)
    assert out["order"][:3] == [3, 20, 7]
    assert len(out["order"]) == len(out["traversal_pixel_change"]) == 6
    assert all(c >= 0 for c in out["traversal_pixel_change"])
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 400 and image.shape[1] > 400
