"""The WGAN-GP baseline: networks (facevae/models/wgan_gp.py), the gradient penalty, and WGANGPModule's training."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from conftest import module_of
from torch import nn
from torch.utils.data import DataLoader

from facevae.core.checkpoint import load_run
from facevae.core.errors import FaceVAEError
from facevae.models import Critic, Generator, WGANGPModule
from facevae.models.wgan_gp import gradient_penalty

# --- the networks -------------------------------------------------------------------------------------------


def test_the_generator_maps_32_latents_to_64x64_rgb_in_minus_one_to_one():
    g = Generator(latent_dim=32, width=8, image_size=64)
    x = g(torch.randn(5, 32) * 10)
    assert x.shape == (5, 3, 64, 64) and x.min() >= -1 and x.max() <= 1
    assert any(isinstance(m, nn.BatchNorm2d) for m in g.modules())


def test_the_dcgan_widths_at_the_defaults():
    g, c = Generator(), Critic()
    first = g.net[0]
    assert (first.in_channels, first.out_channels, first.kernel_size) == (32, 512, (4, 4))  # 8w at 4x4
    convs = [m for m in c.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 128, 256, 512, 1]
    assert all(m.kernel_size == (4, 4) for m in convs)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_the_critic_scores_each_image_with_no_batch_norm(layer_norm):
    c = Critic(width=8, image_size=64, layer_norm=layer_norm)
    assert c(torch.randn(4, 3, 64, 64)).shape == (4,)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in c.modules())
    assert any(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in c.modules())
    # Each score depends on its own image only: what the per-image gradient penalty assumes.
    x = torch.randn(3, 3, 64, 64)
    changed = x.clone()
    changed[1] += 1
    scores, scores_changed = c(x), c(changed)
    assert torch.allclose(scores[[0, 2]], scores_changed[[0, 2]]) and not torch.isclose(scores[1], scores_changed[1])


def test_other_image_sizes_scale_the_networks_and_odd_ones_are_refused():
    assert Generator(8, 4, image_size=32)(torch.randn(2, 8)).shape == (2, 3, 32, 32)
    assert Critic(4, image_size=32)(torch.randn(2, 3, 32, 32)).shape == (2,)
    with pytest.raises(FaceVAEError, match="size=48"):
        Generator(image_size=48)


# --- the gradient penalty -----------------------------------------------------------------------------------


class Linear(nn.Module):
    """D(x) = <w, x> + 3: its gradient is w everywhere."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1) + 3


class HalfSquaredNorm(nn.Module):
    """D(x) = a * ||x||^2 / 2: its gradient at x is a * x."""

    def __init__(self, a: float):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a * x.flatten(1).pow(2).sum(1) / 2


def test_the_penalty_of_a_linear_critic_is_its_weight_norm_minus_one_squared():
    w = torch.tensor([[[2.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]])  # 2 x 2 x 2, norm sqrt(5)
    real, fake = torch.rand(4, 2, 2, 2), torch.rand(4, 2, 2, 2)
    penalty = gradient_penalty(Linear(w), real, fake)  # any eps: the gradient is the same everywhere
    assert penalty.item() == pytest.approx((5**0.5 - 1) ** 2, rel=1e-6)


def test_the_penalty_matches_a_hand_computation_at_fixed_interpolation_points():
    real = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    fake = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    eps = torch.tensor([0.5, 0.25])
    # x_hat = eps real + (1 - eps) fake: (1.5, 2) with norm 2.5, and (1, 1.5) with norm sqrt(3.25).
    # With a = 2 the gradients are 2 x_hat, norms 5 and 2 sqrt(3.25); the penalty is the mean of (norm - 1)^2.
    by_hand = ((5 - 1) ** 2 + (2 * 3.25**0.5 - 1) ** 2) / 2
    critic = HalfSquaredNorm(2.0)
    penalty = gradient_penalty(critic, real, fake, eps=eps)
    assert penalty.item() == pytest.approx(by_hand, rel=1e-6)
    # It trains the critic: d/da of mean((a |x_hat| - 1)^2) = mean(2 (a |x_hat| - 1) |x_hat|).
    penalty.backward()
    norms = np.array([2.5, 3.25**0.5])
    assert critic.a.grad.item() == pytest.approx(np.mean(2 * (2 * norms - 1) * norms), rel=1e-6)


def test_the_penalty_draws_one_eps_per_image_in_the_unit_interval():
    torch.manual_seed(0)
    real, fake = torch.zeros(64, 1), torch.ones(64, 1)
    # D(x) = x^2 / 2 on one pixel: the gradient at x_hat = 1 - eps is 1 - eps, so the penalty is mean(eps^2) ~ 1/3.
    penalty = gradient_penalty(HalfSquaredNorm(1.0), real, fake)
    assert 0.2 < penalty.item() < 0.5


# --- training -----------------------------------------------------------------------------------------------


class RandomCrops(torch.utils.data.Dataset):
    """Batches as the datamodule makes them: {"image": uint8 B x H x W x 3, "index": B}."""

    def __init__(self, batches: int, batch_size: int = 4, size: int = 16):
        self.images = torch.randint(0, 256, (batches, batch_size, size, size, 3), dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "index": torch.arange(len(self.images[i]))}


def _fit(model: WGANGPModule, batches: int, tmp_path, epochs: int = 1) -> pl.Trainer:
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    loader = DataLoader(RandomCrops(batches), batch_size=None)
    trainer.fit(model, train_dataloaders=loader)
    return trainer


def _adam_steps(optimizer: torch.optim.Optimizer) -> int:
    return int(optimizer.state[optimizer.param_groups[0]["params"][0]]["step"])


def test_the_critic_steps_every_batch_and_the_generator_every_fifth(tmp_path):
    model = module_of(WGANGPModule, latent_dim=8, width=4, image_size=16)
    trainer = _fit(model, batches=7, tmp_path=tmp_path, epochs=2)  # 14 batches: the count runs across epochs
    opt_g, opt_c = trainer.optimizers
    assert (_adam_steps(opt_c), _adam_steps(opt_g)) == (14, 2)
    assert model.critic_steps == 14 and trainer.global_step == 14 + 2
    assert opt_c.param_groups[0]["betas"] == (0.0, 0.9) and opt_c.param_groups[0]["lr"] == 1e-4
    assert {"train/critic_loss", "train/gen_loss", "train/wasserstein", "train/gp"} <= set(trainer.callback_metrics)


def test_a_nan_loss_stops_training_with_a_message(tmp_path):
    model = module_of(WGANGPModule, latent_dim=8, width=4, image_size=16, n_critic=2)
    with torch.no_grad():
        model.critic.net[0].weight.fill_(float("nan"))
    with pytest.raises(FaceVAEError, match="not finite by step"):
        _fit(model, batches=4, tmp_path=tmp_path)


@pytest.mark.parametrize(
    "kwargs, words", [({"n_critic": 0}, "n_critic"), ({"lr": 0}, "lr"), ({"adam_betas": [0.0]}, "optimizer.betas")]
)
def test_invalid_settings_are_refused(kwargs, words):
    with pytest.raises(FaceVAEError, match=words):
        module_of(WGANGPModule, **kwargs)


# --- train.py model=wgan_gp, end to end ---------------------------------------------------------------------


def test_train_py_writes_a_checkpoint_that_load_run_rebuilds_as_a_wgan(wgan_run):
    checkpoints = {p.name for p in (wgan_run / "checkpoints").glob("*.ckpt")}
    # No metric chooses a WGAN checkpoint: the kept one is the latest, and its name says so.
    assert "last.ckpt" in checkpoints and any(name.startswith("latest-") for name in checkpoints)
    run = load_run(wgan_run / "checkpoints" / "last.ckpt")
    assert isinstance(run.model, WGANGPModule) and run.model.hparams.generator["width"] == 8
    assert run.config["model"]["n_critic"] == 5 and run.config["model"]["gp_weight"] == 10.0
    # No metric to choose by: the "best" checkpoint is the latest, and the saved config says so.
    assert run.config["callbacks"]["model_checkpoint"]["monitor"] is None
    assert run.model.critic_steps > 0
    images = run.model.sample(3, generator=torch.Generator().manual_seed(0))
    assert images.shape == (3, 3, 64, 64) and 0 <= images.min() and images.max() <= 1


def test_train_py_logs_the_wgan_keys_and_the_generator_grids_and_skips_the_encoder_ones(wgan_run):
    import pandas as pd

    metrics = pd.read_csv(next((wgan_run / "csv").glob("*/metrics.csv")))
    logged = set(metrics.columns)
    assert {"train/critic_loss", "train/wasserstein", "train/gp", "val/wasserstein", "test/wasserstein"} <= logged
    assert "val/psnr_mean_face" not in logged
    images = {p.name for p in (wgan_run / "images").glob("*.png")}
    assert {"val_prior_samples.png", "val_prior_interpolation.png"} <= images
    assert not images & {"val_reconstructions.png", "val_kl_per_dim.png", "val_interpolation.png"}
