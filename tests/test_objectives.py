"""Known answers for the beta-VAE objective and its schedules (facevae/models/objectives.py)."""

from __future__ import annotations

import math

import pytest
import torch

from facevae.models.objectives import (
    beta_vae_loss,
    capacity_at,
    gaussian_nll,
    kl_divergence,
    kl_warmup_weight,
)

# Two "images" of 1 channel x 1 x 2 pixels and a 2-d latent: small enough to work out by hand below.
X = torch.tensor([[[[0.0, 1.0]]], [[[0.5, 0.25]]]])
X_MEAN = torch.tensor([[[[0.1, 0.7]]], [[[0.5, 0.45]]]])
MU = torch.tensor([[0.0, 1.0], [-0.5, 2.0]])
LOGVAR = torch.tensor([[0.0, math.log(0.25)], [math.log(4.0), 0.0]])
SIGMA = 0.2


def nll_by_hand(pixels: list[float], means: list[float], sigma: float) -> float:
    return sum(
        0.5 * ((p - m) / sigma) ** 2 + math.log(sigma) + 0.5 * math.log(2 * math.pi)
        for p, m in zip(pixels, means, strict=True)
    )


def kl_by_hand(mu: float, var: float) -> float:
    return 0.5 * (mu**2 + var - 1 - math.log(var))


RECON = [nll_by_hand([0.0, 1.0], [0.1, 0.7], SIGMA), nll_by_hand([0.5, 0.25], [0.5, 0.45], SIGMA)]
KL = [[kl_by_hand(0.0, 1.0), kl_by_hand(1.0, 0.25)], [kl_by_hand(-0.5, 4.0), kl_by_hand(2.0, 1.0)]]


def test_gaussian_nll_matches_hand_computation():
    got = gaussian_nll(X, X_MEAN, math.log(SIGMA))
    assert got.shape == (2,)
    assert got.tolist() == pytest.approx(RECON, rel=1e-6)
    # A tensor log sigma (as a learned parameter would be) gives the same.
    assert gaussian_nll(X, X_MEAN, torch.tensor(math.log(SIGMA))).tolist() == pytest.approx(RECON, rel=1e-6)


def test_kl_divergence_matches_hand_computation_and_is_zero_at_the_prior():
    got = kl_divergence(MU, LOGVAR)
    assert got.shape == (2, 2)
    assert got.flatten().tolist() == pytest.approx([k for row in KL for k in row], rel=1e-6)
    assert kl_divergence(torch.zeros(3, 5), torch.zeros(3, 5)).abs().max() == 0


def test_kl_divergence_matches_monte_carlo():
    # KL(q || p) = E_q[log q(z) - log p(z)], estimated from 200k samples of each 1-d posterior.
    gen = torch.Generator().manual_seed(0)
    mu = torch.tensor([0.0, 1.0, -2.0, 0.3], dtype=torch.float64)
    logvar = torch.tensor([math.log(0.25), 0.0, math.log(2.0), math.log(0.05)], dtype=torch.float64)
    std = torch.exp(0.5 * logvar)
    eps = torch.randn(200_000, 4, generator=gen, dtype=torch.float64)
    z = mu + std * eps
    log_q = -0.5 * eps**2 - torch.log(std) - 0.5 * math.log(2 * math.pi)
    log_p = -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
    monte_carlo = (log_q - log_p).mean(dim=0)
    analytic = kl_divergence(mu, logvar)
    assert analytic.tolist() == pytest.approx(monte_carlo.tolist(), rel=0.015)


def test_beta_vae_loss_matches_hand_computation():
    beta = 4.0
    out = beta_vae_loss(X, X_MEAN, MU, LOGVAR, math.log(SIGMA), beta=beta)
    kl_per_image = [sum(row) for row in KL]
    assert out.recon.item() == pytest.approx(sum(RECON) / 2, rel=1e-6)
    assert out.kl.item() == pytest.approx(sum(kl_per_image) / 2, rel=1e-6)
    assert out.kl_per_dim.tolist() == pytest.approx([(KL[0][d] + KL[1][d]) / 2 for d in range(2)], rel=1e-6)
    expected = sum(r + beta * k for r, k in zip(RECON, kl_per_image, strict=True)) / 2
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)


def test_capacity_objective_matches_hand_computation_and_ignores_beta():
    capacity, gamma = 3.0, 10.0
    out = beta_vae_loss(X, X_MEAN, MU, LOGVAR, math.log(SIGMA), beta=123.0, capacity=capacity, gamma=gamma)
    kl_per_image = [sum(row) for row in KL]
    expected = sum(r + gamma * abs(k - capacity) for r, k in zip(RECON, kl_per_image, strict=True)) / 2
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)


def test_beta_zero_leaves_only_the_reconstruction_term():
    out = beta_vae_loss(X, X_MEAN, MU, LOGVAR, math.log(SIGMA), beta=0.0)
    assert out.loss.item() == out.recon.item()
    assert out.kl.item() > 0


def test_loss_gradient_reaches_a_learned_log_sigma():
    log_sigma = torch.tensor(0.0, requires_grad=True)
    beta_vae_loss(X, X_MEAN, MU, LOGVAR, log_sigma, beta=1.0).loss.backward()
    # d/ds of sum(0.5 r^2 e^{-2s} + s) at s=0 is sum(1 - r^2) over the pixels, then averaged over the images.
    residuals = (X - X_MEAN).flatten(1)
    expected = (1 - residuals**2).sum(dim=1).mean()
    assert log_sigma.grad.item() == pytest.approx(expected.item(), rel=1e-6)


def test_kl_warmup_weight_rises_linearly_then_stays_at_one():
    assert [kl_warmup_weight(s, 100) for s in (0, 25, 50, 100, 150)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert kl_warmup_weight(0, 0) == 1.0
    assert kl_warmup_weight(12345, 0) == 1.0


def test_capacity_rises_linearly_to_c_max_then_stays():
    assert [capacity_at(s, 25.0, 1000) for s in (0, 100, 500, 1000, 5000)] == [0.0, 2.5, 12.5, 25.0, 25.0]
    assert capacity_at(0, 25.0, 0) == 25.0
