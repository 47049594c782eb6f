"""The beta-VAE network (facevae/models/beta_vae.py) and the LightningModule training it (lit_beta_vae.py)."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from conftest import module_of
from torch import nn
from torch.utils.data import DataLoader, Dataset

from facevae.core.errors import FaceVAEError
from facevae.core.tensors import to_float_images
from facevae.models import BetaVAE, BetaVAEModule

# Training steps outside a Trainer call self.log(), which only warns there.
pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")


def output_shapes(sequential: nn.Sequential, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """(layer type, output shape without the batch) after each conv, linear and reshaping layer."""
    shapes = []
    for layer in sequential:
        x = layer(x)
        if not isinstance(layer, nn.ReLU):
            shapes.append((type(layer).__name__, tuple(x.shape[1:])))
    return shapes


def structured_images(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """uint8 n x size x size x 3: a coloured disc on a two-colour gradient, a different one in each image."""
    gen = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    images = []
    for _ in range(n):
        top, bottom, disc = torch.rand(3, 3, generator=gen)
        cy, cx = 0.25 + 0.5 * torch.rand(2, generator=gen)
        radius = 0.1 + 0.2 * torch.rand(1, generator=gen)
        image = top * (1 - ys[..., None]) + bottom * ys[..., None]
        inside = ((ys - cy) ** 2 + (xs - cx) ** 2 < radius**2)[..., None]
        images.append(torch.where(inside, disc, image))
    return (torch.stack(images) * 255).round().to(torch.uint8)


def batch_of(images: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"image": images, "index": torch.arange(len(images))}


# --- the network --------------------------------------------------------------------------------------------


def test_default_architecture_shapes_match_higgins_et_al_celeba():
    model = BetaVAE()
    x = torch.rand(2, 3, 64, 64)
    assert output_shapes(model.encoder, x) == [
        ("Conv2d", (32, 32, 32)),
        ("Conv2d", (32, 16, 16)),
        ("Conv2d", (64, 8, 8)),
        ("Conv2d", (64, 4, 4)),
        ("Flatten", (1024,)),
        ("Linear", (256,)),
        ("Linear", (64,)),
    ]
    z = torch.randn(2, 32)
    assert output_shapes(model.decoder, z) == [
        ("Linear", (256,)),
        ("Linear", (1024,)),
        ("Unflatten", (64, 4, 4)),
        ("ConvTranspose2d", (64, 8, 8)),
        ("ConvTranspose2d", (32, 16, 16)),
        ("ConvTranspose2d", (32, 32, 32)),
        ("ConvTranspose2d", (3, 64, 64)),
        ("Sigmoid", (3, 64, 64)),
    ]
    for layer in [*model.encoder, *model.decoder]:
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            assert (layer.kernel_size, layer.stride, layer.padding) == ((4, 4), (2, 2), (1, 1))

    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (2, 32)
    x_mean, mu, logvar, z = model(x)
    assert x_mean.shape == (2, 3, 64, 64) and mu.shape == logvar.shape == z.shape == (2, 32)
    assert 0 <= x_mean.min() and x_mean.max() <= 1


def test_default_parameter_count_is_783235():
    assert sum(p.numel() for p in BetaVAE().parameters()) == 783_235


@pytest.mark.parametrize(
    ("latent_dim", "channels", "image_size", "flat"),
    [
        (10, (32, 32, 64), 32, 64 * 4 * 4),
        (32, (32, 32, 64, 64), 128, 64 * 8 * 8),
        (4, (8, 16), 16, 16 * 4 * 4),
    ],
)
def test_other_sizes_compute_the_flatten_size(latent_dim, channels, image_size, flat):
    model = BetaVAE(latent_dim=latent_dim, channels=channels, image_size=image_size)
    x = torch.rand(3, 3, image_size, image_size)
    assert output_shapes(model.encoder, x)[len(channels)] == ("Flatten", (flat,))
    x_mean, mu, logvar, z = model(x)
    assert x_mean.shape == x.shape
    assert mu.shape == logvar.shape == z.shape == (3, latent_dim)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 60}, "size=60: must be a multiple of 16"),
        ({"image_size": 8}, "size=8"),
        ({"latent_dim": 0}, "latent_dim=0"),
        ({"channels": ()}, "channels"),
    ],
)
def test_invalid_architecture_raises_one_line_error(kwargs, message):
    with pytest.raises(FaceVAEError, match=message) as err:
        BetaVAE(**kwargs)
    assert "\n" not in str(err.value)


def test_reparameterize_draws_mu_plus_eps_sigma():
    mu = torch.tensor([[1.0, -2.0]])
    logvar = torch.tensor([[math.log(0.25), math.log(9.0)]])
    torch.manual_seed(0)
    z = BetaVAE.reparameterize(mu, logvar)
    torch.manual_seed(0)
    eps = torch.randn_like(mu)
    torch.testing.assert_close(z, mu + eps * torch.tensor([[0.5, 3.0]]))

    many = BetaVAE.reparameterize(mu.expand(100_000, 2), logvar.expand(100_000, 2))
    torch.testing.assert_close(many.mean(0), mu[0], atol=0.03, rtol=0)
    torch.testing.assert_close(many.std(0), torch.tensor([0.5, 3.0]), atol=0.03, rtol=0)


# --- the LightningModule ------------------------------------------------------------------------------------


def test_to_float_images_and_on_after_batch_transfer():
    images = torch.randint(0, 256, (2, 4, 5, 3), dtype=torch.uint8)
    images[0, 0, 0] = torch.tensor([0, 128, 255], dtype=torch.uint8)
    x = to_float_images(images)
    assert x.dtype == torch.float32 and x.shape == (2, 3, 4, 5)
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([0.0, 128 / 255, 1.0]))
    torch.testing.assert_close(x, images.permute(0, 3, 1, 2).float() / 255)

    batch = module_of(BetaVAEModule).on_after_batch_transfer(batch_of(images), 0)
    assert set(batch) == {"image", "index", "x"}
    torch.testing.assert_close(batch["x"], x)
    assert batch["image"] is images and batch["index"].tolist() == [0, 1]

    with pytest.raises(FaceVAEError, match="uint8 B x H x W x 3"):
        to_float_images(x)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta": -1.0}, "model.beta=-1.0"),
        ({"sigma": 0.0}, "model.sigma=0.0"),
        ({"lr": 0}, "model.optimizer.lr=0:"),
        ({"adam_betas": (0.9,)}, "model.optimizer.betas"),
        ({"kl_warmup_steps": -5}, "model.kl_warmup_steps=-5"),
        ({"capacity_max": -1}, "model.capacity_max=-1:"),
        ({"capacity_steps": -1}, "model.capacity_steps=-1"),
        ({"image_size": 60}, "data.size=60"),
    ],
)
def test_invalid_settings_raise_one_line_error(kwargs, message):
    with pytest.raises(FaceVAEError, match=message.replace(".", r"\.")) as err:
        module_of(BetaVAEModule, **kwargs)
    assert "\n" not in str(err.value)


def test_yaml_lists_are_accepted_and_stored_as_lists():
    module = module_of(BetaVAEModule, latent_dim=8, channels=(16, 16, 32), image_size=32, adam_betas=(0.5, 0.9), beta=4)
    assert module.hparams.net["channels"] == [16, 16, 32] and module.hparams.optimizer["betas"] == [0.5, 0.9]
    assert module.hparams.beta == 4.0 and isinstance(module.hparams.beta, float)
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam)
    assert tuple(optimizer.defaults["betas"]) == (0.5, 0.9) and optimizer.defaults["lr"] == 1e-4


def test_sigma_is_a_fixed_buffer_or_a_learned_parameter():
    fixed = module_of(BetaVAEModule, sigma=0.1)
    assert "log_sigma" in dict(fixed.named_buffers())
    assert "log_sigma" not in dict(fixed.named_parameters())
    learned = module_of(BetaVAEModule, sigma=0.1, learn_sigma=True)
    assert "log_sigma" in dict(learned.named_parameters())
    assert learned.log_sigma.item() == pytest.approx(math.log(0.1))


def test_kl_schedule_follows_warmup_and_capacity(monkeypatch):
    step = {"now": 0}
    monkeypatch.setattr(BetaVAEModule, "global_step", property(lambda self: step["now"]))
    warm = module_of(BetaVAEModule, beta=4.0, kl_warmup_steps=100)
    capped = module_of(BetaVAEModule, capacity_max=20.0, capacity_steps=1000, capacity_gamma=500.0)
    step["now"] = 50
    assert warm.kl_schedule() == (2.0, None)
    assert capped.kl_schedule() == (500.0, 1.0)
    step["now"] = 2000
    assert warm.kl_schedule() == (4.0, None)
    assert capped.kl_schedule() == (500.0, 20.0)


@pytest.fixture
def one_thread():
    """One intra-op thread: a few % slower on an idle machine, several times faster when other jobs share it
    (two spinning OpenMP threads then wait on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_module_overfits_a_fixed_batch(one_thread):
    torch.manual_seed(0)
    module = module_of(BetaVAEModule, lr=1e-3)
    batch = module.on_after_batch_transfer(batch_of(structured_images(16)), 0)
    optimizer = module.configure_optimizers()

    def squared_error() -> float:
        return (module.reconstruct(batch["x"]) - batch["x"]).pow(2).mean().item()

    # The loss's constant (log sigma + log 2pi per pixel) is negative at sigma=0.1, so halving the loss alone
    # says little: the pixels must get closer too. Stop once both have halved (about 110 steps) or at 200.
    error_before = squared_error()
    first_loss, loss, error = None, None, None
    for step in range(200):
        optimizer.zero_grad()
        loss = module.training_loss(batch, step)
        loss.backward()
        optimizer.step()
        first_loss = loss.item() if first_loss is None else first_loss
        if step % 10 == 9:
            error = squared_error()
            if loss.item() < 0.5 * first_loss and error < 0.5 * error_before:
                break
    assert loss.item() < 0.5 * first_loss, (step, loss.item(), first_loss)
    assert error < 0.5 * error_before, (step, error, error_before)


def test_non_finite_loss_raises_naming_the_step():
    module = module_of(BetaVAEModule)
    batch = module.on_after_batch_transfer(batch_of(structured_images(2)), 0)
    batch["x"][0, 0, 0, 0] = float("nan")
    with pytest.raises(FaceVAEError, match=r"loss is nan at step 0 \(epoch 0\); stopping"):
        module.training_loss(batch, 0)


def test_reconstruct_and_sample_give_images_in_range():
    module = module_of(BetaVAEModule, latent_dim=8, channels=(16, 16), image_size=16)
    x = to_float_images(structured_images(3, size=16))
    assert module.reconstruct(x).shape == (3, 3, 16, 16)
    a = module.sample(5, generator=torch.Generator().manual_seed(1))
    b = module.sample(5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (5, 3, 16, 16) and not a.requires_grad
    torch.testing.assert_close(a, b)
    assert 0 <= a.min() and a.max() <= 1


class FaceCrops(Dataset):
    """What the datamodule serves: uint8 channels-last crops and their frame index."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "index": i}


def test_trainer_logs_metrics_and_checkpoint_rebuilds_the_module(tmp_path):
    pl.seed_everything(0, verbose=False)
    crops = FaceCrops(structured_images(16, size=32))
    loader = DataLoader(crops, batch_size=8)
    module = module_of(
        BetaVAEModule,
        latent_dim=4,
        channels=[16, 16, 32],
        image_size=32,
        learn_sigma=True,
        kl_warmup_steps=10,
        beta=2.0,
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, loader, loader)
    metrics = trainer.callback_metrics
    for key in ["train/loss", "train/recon", "train/kl", "train/beta", "train/beta_norm", "train/sigma"]:
        assert key in metrics
    assert metrics["train/beta"].item() == pytest.approx(2.0 * 1 / 10)  # last step is step 1 of 10 warm-up
    assert metrics["train/beta_norm"].item() == pytest.approx(0.2 * 4 / (3 * 32 * 32))
    for key in ["val/loss", "val/recon", "val/kl", "val/psnr", "val/ssim", "val/active_units_kl"]:
        assert key in metrics
    assert [k for k in metrics if k.startswith("val/kl_dim/")] == [f"val/kl_dim/{i:02d}" for i in range(4)]
    kl = module.last_val_kl_per_dim
    assert kl.shape == (4,) and kl.device.type == "cpu"
    assert metrics["val/kl"].item() == pytest.approx(kl.sum().item(), rel=1e-4)
    assert metrics["val/active_units_kl"].item() == (kl > 0.01).sum().item()
    assert 0 < metrics["val/psnr"].item() < 60 and -1 <= metrics["val/ssim"].item() <= 1

    trainer.test(module, loader, verbose=False)
    assert "test/psnr" in trainer.callback_metrics and "test/kl_dim/03" in trainer.callback_metrics
    assert module.last_test_kl_per_dim.shape == (4,)

    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    restored = BetaVAEModule.load_from_checkpoint(path)
    assert restored.hparams.net["channels"] == [16, 16, 32] and restored.hparams.learn_sigma
    x = to_float_images(crops.images[:2])
    torch.testing.assert_close(restored.reconstruct(x), module.reconstruct(x))
    torch.testing.assert_close(restored.log_sigma, module.log_sigma)


@pytest.mark.parametrize("mode, shape", [("optimal", ()), ("optimal_per_pixel", (3, 32, 32))])
def test_optimal_sigma_is_the_batch_mse_in_training_and_kept_for_evaluation(mode, shape):
    module = module_of(BetaVAEModule, latent_dim=4, channels=[16, 16, 32], image_size=32, learn_sigma=mode)
    x = torch.rand(8, 3, 32, 32)
    module.train()
    torch.manual_seed(0)
    x_mean, *_ = module.model(x)
    torch.manual_seed(0)
    module.compute_loss(x, 1.0, None)
    dims = (0, 1, 2, 3) if mode == "optimal" else (0,)
    expected = 0.5 * (x - x_mean.detach()).pow(2).mean(dim=dims).log()
    assert module.log_sigma.shape == shape
    torch.testing.assert_close(module.log_sigma, expected.clamp(min=-6.0))
    kept = module.log_sigma.clone()
    module.eval()
    module.compute_loss(
        torch.rand(8, 3, 32, 32), 1.0, None
    )  # evaluation uses the training value, never its own batch's
    torch.testing.assert_close(module.log_sigma, kept)
    assert "log_sigma" in dict(module.named_buffers())


def test_an_unknown_sigma_mode_is_refused():
    with pytest.raises(FaceVAEError, match="model.learn_sigma=sometimes"):
        module_of(BetaVAEModule, learn_sigma="sometimes")
