"""Checkpoints whose hyperparameters are the modules' flat arguments (latent_dim, channels, lr, adam_betas, ...) still
load, evaluate and resume: each module builds its network and optimizer from them.

tests/data holds two such checkpoints, written by train.py on a 12-second demo clip with a tiny network
(model channels [8,8,8,8], hidden 32, latent_dim 4): flat-beta_vae.ckpt (beta 2, a learned sigma, with its
optimiser state) and flat-stacked-member.ckpt (member 1, beta 4, of a stacked run with betas [1, 4]). The stacked
run's own checkpoint and the WGAN's are larger; their flat hyperparameters, as train.py wrote them, are below.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import make_train_cfg, module_of
from omegaconf import open_dict

from facevae.core.checkpoint import load_run
from facevae.core.errors import FaceVAEError
from facevae.core.tensors import to_float_images
from facevae.models import BetaVAE, BetaVAEModule, StackedBetaVAEModule, WGANGPModule
from facevae.resume import check_resumable

DATA = Path(__file__).parent / "data"
FLAT_VAE = DATA / "flat-beta_vae.ckpt"
FLAT_MEMBER = DATA / "flat-stacked-member.ckpt"
SHARED = {
    "latent_dim": 4,
    "channels": [8, 8, 8, 8],
    "hidden": 32,
    "image_size": 64,
    "sigma": 0.1,
    "learn_sigma": False,
    "lr": 0.0001,
    "adam_betas": [0.9, 0.999],
    "kl_warmup_steps": 0,
    "capacity_max": None,
    "capacity_steps": 100000,
    "capacity_gamma": 1000.0,
    "compile": "auto",
    "cuda_graph": "auto",
    "channels_last": False,
}
FLAT_STACKED = {**SHARED, "betas": [1.0, 4.0], "vmap": "auto"}
FLAT_WGAN = {
    "latent_dim": 4,
    "width": 8,
    "image_size": 64,
    "critic_layer_norm": False,
    "n_critic": 5,
    "gp_weight": 10.0,
    "lr": 0.0001,
    "adam_betas": [0.0, 0.9],
}


def test_a_flat_beta_vae_checkpoint_loads_as_evaluate_and_live_load_it():
    run = load_run(FLAT_VAE)
    model, saved = run.model, torch.load(FLAT_VAE, weights_only=False)
    assert type(model) is BetaVAEModule and run.meta["model_class"] == "facevae.models.lit_beta_vae.BetaVAEModule"
    assert model.hparams.net == {
        "_target_": "facevae.models.BetaVAE",
        "latent_dim": 4,
        "channels": [8, 8, 8, 8],
        "hidden": 32,
        "image_size": 64,
        "in_channels": 3,
    }
    assert model.hparams.optimizer["lr"] == 1e-4 and model.hparams.optimizer["betas"] == [0.9, 0.999]
    assert (
        model.hparams.beta == 2.0
        and model.hparams.learn_sigma is True
        and isinstance(model.log_sigma, torch.nn.Parameter)
    )
    assert model.latent_dim == model.hparams.latent_dim == 4
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, saved["state_dict"][name])
    x = to_float_images(torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8))
    assert model.reconstruct(x).shape == (2, 3, 64, 64) and model.encode(x)[0].shape == (2, 4)


def test_a_flat_member_checkpoint_of_a_stacked_run_loads_as_its_beta():
    model = load_run(FLAT_MEMBER).model
    assert type(model) is BetaVAEModule and model.hparams.beta == 4.0 and model.hparams.net["hidden"] == 32


def test_a_flat_checkpoint_resumes_into_the_network_the_config_builds(tmp_path):
    cfg = make_train_cfg(tmp_path, tmp_path / "moved.mp4", "model.net.channels=[8,8,8,8]", "model.net.hidden=32")
    with open_dict(cfg):
        cfg.model.net.latent_dim, cfg.model.beta, cfg.model.learn_sigma = 4, 2.0, True
        cfg.trainer.max_epochs = 3
    check_resumable(str(FLAT_VAE), cfg)  # the same network, seed and batch size: resumable
    saved = torch.load(FLAT_VAE, weights_only=False)
    model = BetaVAEModule(BetaVAE(latent_dim=4, channels=[8, 8, 8, 8], hidden=32), learn_sigma=True)
    model.load_state_dict(saved["state_dict"])  # what Lightning does when it resumes
    optimizer = model.configure_optimizers()
    optimizer.load_state_dict(saved["optimizer_states"][0])
    assert optimizer.param_groups[0]["lr"] == 1e-4

    cfg.model.net.latent_dim = 8
    with pytest.raises(FaceVAEError, match=r"trained with model\.net\.latent_dim=4, not 8"):
        check_resumable(str(FLAT_VAE), cfg)


@pytest.mark.parametrize(
    "cls, flat, nets",
    [
        (StackedBetaVAEModule, FLAT_STACKED, ("net",)),
        (WGANGPModule, FLAT_WGAN, ("generator", "critic")),
    ],
)
def test_flat_stacked_and_wgan_checkpoints_load_with_their_weights(tmp_path, cls, flat, nets):
    trained = module_of(cls, **flat)
    path = tmp_path / "flat.ckpt"
    torch.save({"state_dict": trained.state_dict(), "hyper_parameters": dict(flat)}, path)
    loaded = cls.load_from_checkpoint(path)
    assert type(loaded) is cls and loaded.latent_dim == 4
    assert all(loaded.hparams[key]["_target_"].startswith("facevae.models.") for key in nets)
    for name, value in loaded.state_dict().items():
        torch.testing.assert_close(value, trained.state_dict()[name])
    # Saved again, the hyperparameters are the module's own form, and load the same.
    assert cls.arguments_from_hparams(dict(loaded.hparams)).keys() == cls.arguments_from_hparams(flat).keys()


def test_the_new_form_round_trips_through_a_checkpoint(tmp_path):
    model = module_of(BetaVAEModule, latent_dim=4, channels=[8, 8], image_size=16, lr=1e-3, beta=3)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    loaded = BetaVAEModule.load_from_checkpoint(path)
    assert dict(loaded.hparams) == dict(model.hparams)
    assert loaded.configure_optimizers().defaults["lr"] == 1e-3
