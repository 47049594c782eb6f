"""Tests of the expression shift: path geometry, the mouth mask, pixel scorers, and the shift on a
toy decoder whose only smile is a mouth that brightens with z[0]."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import module_of
from torch import nn

from facevae.evaluation.expression_shift import expression_shift
from facevae.metrics.expression_shift import mouth_mask
from facevae.metrics.pixel_scorers import (
    fit_factor_regressors,
    fit_smile_classifier,
    fit_smile_regressor,
    pixel_features,
)
from facevae.models.inference import decode_latents
from facevae.models.latent_paths import (
    ShiftTarget,
    conditional_direction,
    factor_steps,
    latent_directions,
    normal_step_length,
    separation_along,
    shift_latent_paths,
    shift_paths,
)
from facevae.plots.expression_shift import expression_shift_figure

SIZE = 64
D = 4
MOUTH = mouth_mask(SIZE)


class MouthDecoder(nn.Module):
    """A stand-in VAE: the decoder paints a grey face whose mouth region brightens with z[0] and whose rest
    brightens with z[1] (the "light"); the encoder reads both back. Nothing else depends on z."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # encode_images asks the parameters for the device
        self.mask = torch.from_numpy(MOUTH)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        mouth = torch.sigmoid(z[:, 0])[:, None, None, None]  # brightness in (0, 1)
        images = (0.4 + 0.2 * torch.tanh(z[:, 1]))[:, None, None, None].expand(-1, 3, SIZE, SIZE)
        return torch.where(self.mask, mouth.expand(-1, 3, SIZE, SIZE), images)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        brightness = x[:, :, self.mask].mean(dim=(1, 2)).clamp(1e-3, 1 - 1e-3)
        rest = x[:, :, ~self.mask].mean(dim=(1, 2))
        mu = torch.zeros(len(x), D)
        mu[:, 0] = torch.logit(brightness)
        mu[:, 1] = torch.atanh(((rest - 0.4) / 0.2).clamp(-0.999, 0.999))
        return mu, torch.zeros_like(mu)


def mouth_brightness(images: np.ndarray) -> np.ndarray:
    """The toy smile scorer: mean brightness of the mouth region, 0-1."""
    return images[:, MOUTH].astype(np.float64).mean(axis=(1, 2)) / 255.0


def outside_brightness(images: np.ndarray) -> np.ndarray:
    return images[:, ~MOUTH].astype(np.float64).mean(axis=(1, 2)) / 255.0


def test_centroid_paths_start_at_z_and_end_at_the_centroid():
    rng = np.random.default_rng(0)
    z, centroid = rng.normal(size=(5, D)), rng.normal(size=D)
    steps = np.linspace(0, 1, 5)
    paths = shift_paths(z, steps=steps, target=centroid)
    assert paths.shape == (5, 5, D)
    np.testing.assert_allclose(paths[:, 0], z)
    np.testing.assert_allclose(paths[:, -1], np.broadcast_to(centroid, (5, D)))
    np.testing.assert_allclose(paths[:, 2], (z + centroid) / 2)


def test_normal_paths_move_along_the_normal_only():
    rng = np.random.default_rng(1)
    z, direction = rng.normal(size=(4, D)), rng.normal(size=D) * 3.0
    unit = direction / np.linalg.norm(direction)
    paths = shift_paths(z, steps=np.linspace(0, 1, 3), direction=direction, length=2.5)
    moves = paths - z[:, None, :]
    # Every displacement is a multiple of the unit normal: nothing orthogonal to it changes.
    np.testing.assert_allclose(moves - (moves @ unit)[..., None] * unit, 0.0, atol=1e-12)
    np.testing.assert_allclose(moves @ unit, np.broadcast_to([0.0, 1.25, 2.5], (4, 3)))
    with pytest.raises(ValueError, match="exactly one"):
        shift_paths(z, steps=np.linspace(0, 1, 3))
    with pytest.raises(ValueError, match="exactly one"):
        shift_paths(z, steps=np.linspace(0, 1, 3), target=z[0], direction=direction)


def test_normal_step_length_is_the_centroid_gap_along_the_normal():
    assert normal_step_length(np.array([0.0, 2.0]), np.array([5.0, 3.0]), np.array([1.0, -1.0])) == pytest.approx(4.0)


def test_a_normal_path_travels_as_far_as_its_start_lies_from_the_smiles_along_the_normal():
    z = np.array([[0.0, 0.0], [1.0, 3.0], [6.0, 0.0]])
    normal, centroid = np.array([2.0, 0.0]), np.array([5.0, 1.0])
    length = separation_along(normal, centroid, z)
    np.testing.assert_allclose(length, [5.0, 4.0, 0.0])  # the third start is past the smiles already: it stays
    ends = shift_paths(z, steps=np.array([0.0, 1.0]), direction=normal, length=length)[:, -1]
    np.testing.assert_allclose(ends[:2, 0], 5.0)  # level with the smiles' centroid along n
    np.testing.assert_allclose(ends[:, 1], z[:, 1])


def test_the_conditional_direction_leaves_the_other_directions_alone():
    rng = np.random.default_rng(5)
    normal, others = rng.normal(size=6), rng.normal(size=(2, 6))
    conditional = conditional_direction(normal, others)
    np.testing.assert_allclose(others @ conditional, 0.0, atol=1e-12)
    assert np.linalg.norm(conditional) == pytest.approx(1.0) and conditional @ normal > 0
    with pytest.raises(ValueError, match="nothing is left"):
        conditional_direction(others[0] + others[1], others)
    # A factor that grows with z[1] - z[2] has that direction.
    z = rng.normal(size=(20000, 4))
    direction = latent_directions(z, (z[:, 1] - z[:, 2])[:, None])
    np.testing.assert_allclose(direction, [[0.0, 2**-0.5, -(2**-0.5), 0.0]], atol=0.02)


def test_mouth_mask_covers_the_lower_middle():
    mask = mouth_mask(SIZE)
    rows, cols = np.nonzero(mask)
    assert not mask[: SIZE // 2].any()  # nothing in the top half: eyes and brows stay outside
    assert not mask[:, :4].any() and not mask[:, -4:].any()  # nor at the crop's sides
    assert rows.mean() > 0.65 * SIZE and abs(cols.mean() - (SIZE - 1) / 2) < 1
    assert 0.2 < mask.mean() < 0.45
    assert mouth_mask(32).shape == (32, 32)


def _mouth_images(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grey noisy faces whose mouth brightness follows `values` in [-1, 1]."""
    images = np.clip(0.4 + 0.05 * rng.normal(size=(len(values), SIZE, SIZE, 1)), 0, 1).repeat(3, axis=-1)
    images[:, MOUTH] = (0.5 + 0.3 * values)[:, None, None]
    return (images * 255).astype(np.uint8)


def test_pixel_scorers_fit_a_planted_smile():
    rng = np.random.default_rng(2)
    smile = rng.uniform(-1, 1, 160)
    images = _mouth_images(smile, rng)
    assert pixel_features(images).shape == (160, 32 * 32)
    regressor = fit_smile_regressor(images, smile)
    assert regressor.kind == "regressor" and regressor.heldout_score > 0.9
    assert np.corrcoef(regressor(images), smile)[0, 1] > 0.95
    classifier = fit_smile_classifier(images, (smile > 0).astype(int), blocks=np.arange(160) // 16)
    assert classifier.heldout_score > 0.9
    p = classifier(images)
    assert p.min() >= 0 and p.max() <= 1 and p[smile > 0.5].mean() > p[smile < -0.5].mean() + 0.5
    factors = np.stack([smile, rng.normal(size=160)], axis=1)
    regressors = fit_factor_regressors(images, factors, ["smile", "noise"])
    assert set(regressors) == {"smile", "noise"}
    assert regressors["smile"].heldout_score > 0.9 and regressors["noise"].heldout_score < 0.2


def test_shift_toward_brighter_mouth_gains_smile_and_the_conditional_path_keeps_the_light(tmp_path):
    model = MouthDecoder()
    rng = np.random.default_rng(3)
    mu_start = rng.normal(size=(6, D)) * 0.3 + np.array([-2.0, 0, 0, 0])
    images_start = decode_latents(model, mu_start)
    # The smiles sit brighter in the mouth, and a little brighter overall too: the smile normal mixes in the light.
    target = ShiftTarget(np.array([2.0, 0.8, -0.5, 0.0]), np.array([1.0, 0.4, 0.0, 0.0]), np.eye(D)[[1]])
    result = expression_shift(
        model,
        images_start,
        mu_start,
        target,
        mouth_brightness,
        other_regressors={"outside": outside_brightness},
        images_smile=decode_latents(model, np.tile([2.0, 0.8, -0.5, 0.0], (5, 1))),
        cascade=mouth_brightness,
    )
    metrics = result.metrics()
    json.dumps(metrics)  # what evaluate.py writes to metrics.json must serialise as it is
    assert result.kinds == ["centroid", "normal", "conditional"]
    for suffix in ("", "_normal", "_conditional"):
        assert metrics[f"shift_smile_gain{suffix}"] > 0.5 and metrics[f"shift_mouth_change{suffix}"] > 0.5
    assert metrics["shift_smile_progress"] == pytest.approx(1.0, abs=0.02)  # the centroid path reaches the smiles
    assert metrics["shift_cascade_progress"] == pytest.approx(1.0, abs=0.02)
    assert metrics["shift_outside_mouth_change"] > 0.05 and metrics["shift_outside_mouth_change_normal"] > 0.02
    assert metrics["shift_outside_mouth_change_conditional"] < 1e-3  # the light, projected out, stays
    assert metrics["shift_other_factor_change_conditional"]["outside"] < 1e-3
    assert metrics["shift_mouth_ratio_conditional"] is None or metrics["shift_mouth_ratio_conditional"] > 100
    lengths = metrics["shift_path_length"]
    assert lengths["centroid"] > lengths["normal"] and lengths["conditional"] > 0
    assert metrics["shift_equal_distance"] == pytest.approx(min(lengths.values()), rel=0.2)
    assert set(metrics["shift_smile_gain_equal_distance"]) == {"centroid", "normal", "conditional"}
    for kind in result.kinds:
        assert result.paths[kind].images.shape == (6, 7, SIZE, SIZE, 3)
        assert np.all(np.diff(result.paths[kind].measures.smile_score) > 0)  # brighter at every step

    path = expression_shift_figure(result, images_start, tmp_path / "expression_shift.png", n_rows=4, note="a note")
    assert path.stat().st_size > 10_000


def test_expression_shift_runs_on_the_real_model(tmp_path):
    from facevae.models.lit_beta_vae import BetaVAEModule

    torch.manual_seed(0)
    model = module_of(BetaVAEModule, latent_dim=8)
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, size=(3, SIZE, SIZE, 3), dtype=np.uint8)
    target = ShiftTarget(np.ones(8), np.eye(8)[0])
    result = expression_shift(
        model, images, rng.normal(size=(3, 8)), target, mouth_brightness, steps=np.linspace(0, 1, 3)
    )
    assert result.paths["centroid"].images.shape == (3, 3, SIZE, SIZE, 3)
    assert result.references.smiling_recon is None and result.metrics()["smile_score_smiling"] is None
    expression_shift_figure(result, images, tmp_path / "shift.png")


def test_other_directions_spanning_every_latent_leave_out_the_conditional_path(tmp_path):
    """A small model (4 latents) on data with 8 other factors: no direction is left once they are projected out;
    the centroid and normal paths are still measured, and evaluation carries on."""
    model = MouthDecoder()
    rng = np.random.default_rng(6)
    mu_start = rng.normal(size=(4, D)) * 0.3 + np.array([-2.0, 0, 0, 0])
    images_start = decode_latents(model, mu_start)
    others = np.eye(D)[[0, 1, 2, 3, 1]]  # more directions than latents
    target = ShiftTarget(np.array([2.0, 0.0, 0.0, 0.0]), np.array([1.0, 0.4, 0.0, 0.0]), others)
    result = expression_shift(model, images_start, mu_start, target, mouth_brightness, steps=np.linspace(0, 1, 3))
    assert result.kinds == ["centroid", "normal"]
    assert not [k for k in result.metrics() if k.endswith("_conditional")]
    assert set(result.gain_equal_distance) == {"centroid", "normal"}
    assert expression_shift_figure(result, images_start, tmp_path / "shift.png").stat().st_size > 0


@pytest.mark.parametrize(
    "progress, ratio, verdict",
    [(0.9, 2.5, "THE FACES SMILE"), (0.9, 1.2, "PARTLY"), (0.5, 3.0, "PARTLY"), (0.1, 3.0, "DO NOT SMILE")],
)
def test_the_figure_says_whether_the_faces_smile_in_its_title(progress, ratio, verdict):
    from facevae.plots.expression_shift import smiles_verdict

    metrics = {"shift_smile_progress": 0.05, "shift_mouth_ratio": 1.0}
    metrics.update(shift_smile_progress_normal=progress, shift_mouth_ratio_normal=ratio)
    said = smiles_verdict(metrics, ["centroid", "normal"])
    assert said.startswith(verdict) or verdict in said.split(":")[0]
    assert f"normal path: {progress:.0%}" in said


def test_no_verdict_when_the_model_reconstructs_smiles_as_it_does_other_faces():
    from facevae.plots.expression_shift import smiles_verdict

    metrics = {"shift_smile_progress": 2.4, "shift_mouth_ratio": 1.5}
    metrics.update(shift_smile_score_smiling_recon=0.53, shift_smile_score_start_recon=0.53)
    assert smiles_verdict(metrics, ["centroid"]).startswith("NO VERDICT: the model reconstructs smiling")


def test_the_verdict_names_a_path_that_smiles_even_when_another_went_further():
    from facevae.plots.expression_shift import smiles_verdict

    metrics = {"shift_smile_progress": 1.3, "shift_mouth_ratio": 1.1}  # the centroid also changes light and pose
    metrics.update(shift_smile_progress_conditional=0.9, shift_mouth_ratio_conditional=2.2)
    said = smiles_verdict(metrics, ["centroid", "conditional"])
    assert said.startswith("THE FACES SMILE (conditional path: 90%")


def test_factor_steps_credit_each_factor_only_with_its_own_move():
    """Smiles that fall, by chance, on brighter stretches: the smile's own step leaves the light out, where the
    covariance direction (latent_directions) carries the light along."""
    rng = np.random.default_rng(7)
    light = rng.normal(size=4000)
    smile = (0.6 * light + rng.normal(size=4000) > 0.5).astype(float)
    z = np.column_stack([2.0 * smile, 3.0 * light, rng.normal(size=4000), np.zeros(4000)])
    z += 0.05 * rng.normal(size=z.shape)
    steps = factor_steps(z, np.column_stack([smile, light]))
    np.testing.assert_allclose(steps[0], [2.0, 0.0, 0.0, 0.0], atol=0.12)
    np.testing.assert_allclose(steps[1], [0.0, 3.0, 0.0, 0.0], atol=0.12)
    assert abs(latent_directions(z, smile[:, None])[0, 1]) > 0.3  # the marginal direction mixes in the light
    with pytest.raises(ValueError, match="more rows"):
        factor_steps(z[:2], np.column_stack([smile, light])[:2])


def test_a_conditional_step_is_travelled_whole_from_every_start():
    z = np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 2.0]])
    target = ShiftTarget(np.array([3.0, 3.0, 0.0]), np.array([1.0, 0.0, 0.0]), conditional_step=np.array([0, 2.0, 0]))
    paths, lengths, _ = shift_latent_paths(z, target, np.linspace(0, 1, 3))
    np.testing.assert_allclose(lengths["conditional"], [2.0, 2.0])
    np.testing.assert_allclose(paths["conditional"][:, -1] - z, [[0, 2.0, 0], [0, 2.0, 0]])
    no_step = ShiftTarget(np.array([3.0, 3.0, 0.0]), np.array([1.0, 0.0, 0.0]), conditional_step=np.zeros(3))
    assert "conditional" not in shift_latent_paths(z, no_step, np.linspace(0, 1, 3))[0]


def test_progress_of_real_says_where_the_shifted_faces_land_between_real_starts_and_real_smiles():
    from facevae.metrics.expression_shift import ShiftReferences, _reach

    ref = ShiftReferences(start_input=-0.1, start_recon=0.1, smiling_recon=0.6, smiling_input=0.7)
    assert _reach(0.5, ref) == pytest.approx(0.75)  # (0.5 + 0.1) / (0.7 + 0.1)
    assert _reach(0.5, ShiftReferences(start_input=0.0, start_recon=0.0)) is None
