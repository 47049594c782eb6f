"""BetaVAEModule: trains a BetaVAE on face crops with the objectives in objectives.py, and logs what to watch.

Logged keys (nats per image unless said otherwise):
    train/loss train/recon train/kl   every step
    train/beta                        the weight on the KL term now: beta * warm-up, or gamma * warm-up under
                                      the capacity objective
    train/beta_norm                   train/beta * latent_dim / (3 * H * W): Higgins et al.'s normalised beta
    train/capacity                    C now, only under the capacity objective
    train/sigma                       the decoder's standard deviation, only when it is learned
    val/loss val/recon val/kl         epoch means (test/... the same on the test set)
    val/psnr val/ssim                 of the decoder mean at the posterior mean mu
    val/kl_dim/00 ...                 each latent's mean KL over the epoch
    val/active_units                  latents whose mean KL exceeds ACTIVE_KL_NATS
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from facevae.errors import FaceVAEError
from facevae.models.beta_vae import BetaVAE
from facevae.models.objectives import VAELoss, beta_vae_loss, capacity_at, kl_warmup_weight

# A latent whose posterior stays within 0.01 nats of the prior tells the decoder almost nothing: "inactive".
ACTIVE_KL_NATS = 0.01


def to_float_images(images: Tensor) -> Tensor:
    """uint8 B x H x W x 3 (channels-last, as the crop cache has them) -> float32 B x 3 x H x W in [0,1]."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise FaceVAEError(f"expected face crops as uint8 B x H x W x 3, got {images.dtype} {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float().div(255.0).contiguous()


class KLPerDim(Metric):
    """Each latent's KL averaged over all images seen since the last reset. The states are summed across
    processes, so under DDP every rank computes the mean over the whole validation set."""

    full_state_update = False

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.add_state("total", default=torch.zeros(latent_dim), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, kl_per_dim: Tensor, n: int) -> None:
        """kl_per_dim: the batch mean of each latent's KL; n: the number of images in the batch."""
        self.total += kl_per_dim.detach() * n
        self.count += n

    def compute(self) -> Tensor:
        return self.total / self.count.clamp(min=1.0)


class BetaVAEModule(pl.LightningModule):
    """A beta-VAE with a Gaussian decoder of fixed or learned sigma, trained with Adam.

    Batches are dicts {"image": uint8 B x H x W x 3, "index": int64 B}; on_after_batch_transfer adds
    "x": float B x 3 x H x W in [0, 1] on the device. capacity_max (nats) switches to the controlled-capacity
    objective of Burgess et al. 2018: C rises linearly to capacity_max over capacity_steps; beta is unused.
    """

    def __init__(
        self,
        latent_dim: int = 32,
        channels: Sequence[int] = (32, 32, 64, 64),
        hidden: int = 256,
        image_size: int = 64,
        beta: float = 1.0,
        sigma: float = 0.1,
        learn_sigma: bool = False,
        lr: float = 1e-4,
        adam_betas: Sequence[float] = (0.9, 0.999),
        kl_warmup_steps: int = 0,
        capacity_max: float | None = None,
        capacity_steps: int = 100_000,
        capacity_gamma: float = 1000.0,
    ) -> None:
        super().__init__()
        # Plain lists, from a YAML ListConfig or a Python tuple: hparams.yaml and checkpoints stay plain.
        channels = [int(c) for c in channels]
        adam_betas = [float(b) for b in adam_betas]
        beta, sigma, lr = float(beta), float(sigma), float(lr)
        capacity_max = None if capacity_max is None else float(capacity_max)
        capacity_gamma = float(capacity_gamma)
        _check(math.isfinite(beta) and beta >= 0, f"model.beta={beta}: must be a finite number >= 0")
        _check(math.isfinite(sigma) and sigma > 0, f"model.sigma={sigma}: the decoder's std must be > 0")
        _check(math.isfinite(lr) and lr > 0, f"model.lr={lr}: the learning rate must be > 0")
        _check(
            len(adam_betas) == 2 and all(0 <= b < 1 for b in adam_betas),
            f"model.adam_betas={adam_betas}: need two numbers in [0, 1)",
        )
        _check(kl_warmup_steps >= 0, f"model.kl_warmup_steps={kl_warmup_steps}: must be >= 0 (0 = off)")
        _check(
            capacity_max is None or (math.isfinite(capacity_max) and capacity_max >= 0),
            f"model.capacity_max={capacity_max}: must be null (off) or a number of nats >= 0",
        )
        _check(capacity_steps >= 0, f"model.capacity_steps={capacity_steps}: must be >= 0")
        _check(
            math.isfinite(capacity_gamma) and capacity_gamma >= 0,
            f"model.capacity_gamma={capacity_gamma}: must be a finite number >= 0",
        )
        self.save_hyperparameters()

        self.model = BetaVAE(latent_dim=latent_dim, channels=channels, hidden=hidden, image_size=image_size)
        # log sigma, not sigma: a learned scale stays positive without constraints. A buffer when fixed, so it
        # still follows the module to the device and into the checkpoint.
        log_sigma = torch.tensor(math.log(sigma))
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

        # Metric objects, one set per stage, accumulate over the epoch and synchronise across DDP processes.
        stages = ("val", "test")
        self.psnr = nn.ModuleDict({s: PeakSignalNoiseRatio(data_range=1.0) for s in stages})
        self.ssim = nn.ModuleDict({s: StructuralSimilarityIndexMeasure(data_range=1.0) for s in stages})
        self.kl_per_dim = nn.ModuleDict({s: KLPerDim(latent_dim) for s in stages})
        self.last_val_kl_per_dim: Tensor | None = None
        self.last_test_kl_per_dim: Tensor | None = None

    # --- the objective --------------------------------------------------------------------------------------

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Float images B x 3 x H x W in [0, 1] -> (x_mean, mu, logvar, z), as BetaVAE.forward."""
        return self.model(x)

    def kl_schedule(self) -> tuple[float, float | None]:
        """(weight on the KL term, capacity C or None) at the current global step."""
        hp = self.hparams
        warm = kl_warmup_weight(self.global_step, hp.kl_warmup_steps)
        if hp.capacity_max is None:
            return hp.beta * warm, None
        return hp.capacity_gamma * warm, capacity_at(self.global_step, hp.capacity_max, hp.capacity_steps)

    def _loss(self, x: Tensor) -> tuple[VAELoss, Tensor, float, float | None]:
        x_mean, mu, logvar, _ = self.model(x)
        weight, capacity = self.kl_schedule()
        # One weight serves both objectives: beta_vae_loss reads beta without a capacity and gamma with one.
        out = beta_vae_loss(x, x_mean, mu, logvar, self.log_sigma, weight, capacity=capacity, gamma=weight)
        return out, mu, weight, capacity

    # --- Lightning hooks ------------------------------------------------------------------------------------

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Convert the uint8 channels-last crops on the device, where it is cheap, not in the loader workers:
        a uint8 batch is a quarter of the float one to copy."""
        if isinstance(batch, dict) and "image" in batch:
            batch = {**batch, "x": to_float_images(batch["image"])}
        return batch

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        x = batch["x"]
        out, _, weight, capacity = self._loss(x)
        # A NaN would poison every weight at the next step; stop now, before it reaches a checkpoint.
        if not torch.isfinite(out.loss):
            raise FaceVAEError(
                f"loss is {out.loss.item()} at step {self.global_step} (epoch {self.current_epoch}); "
                "stopping — the last good checkpoint is kept"
            )
        n = x.shape[0]
        _, c, h, w = x.shape
        self.log("train/loss", out.loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=n)
        log = {
            "train/recon": out.recon,
            "train/kl": out.kl,
            "train/beta": weight,
            "train/beta_norm": weight * self.hparams.latent_dim / (c * h * w),
        }
        if capacity is not None:
            log["train/capacity"] = capacity
        if self.hparams.learn_sigma:
            log["train/sigma"] = self.log_sigma.detach().exp()
        self.log_dict(log, on_step=True, on_epoch=False, batch_size=n)
        return out.loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch["x"], "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch["x"], "test")

    def _evaluate(self, x: Tensor, stage: str) -> None:
        # The same objective as training at this step, so val/loss and train/loss compare.
        out, mu, _, _ = self._loss(x)
        if stage == "val" and not torch.isfinite(out.loss):  # diverged weights must not become a checkpoint
            raise FaceVAEError(
                f"validation loss is {out.loss.item()} at epoch {self.current_epoch}: the weights diverged; "
                "stopping — the last good checkpoint is kept"
            )
        n = x.shape[0]
        log = {f"{stage}/loss": out.loss, f"{stage}/recon": out.recon, f"{stage}/kl": out.kl}
        # The beta=1 bound: unlike the loss, it compares runs of different beta (what a sweeper optimises).
        log[f"{stage}/neg_elbo"] = out.recon + out.kl
        self.log_dict(log, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        # Image quality of the model's best guess: the decoder mean at mu, not at a noisy sample.
        x_hat = self.model.decode(mu).clamp(0.0, 1.0)
        self.psnr[stage].update(x_hat, x)
        self.ssim[stage].update(x_hat, x)
        self.log(f"{stage}/psnr", self.psnr[stage], on_step=False, on_epoch=True, batch_size=n)
        self.log(f"{stage}/ssim", self.ssim[stage], on_step=False, on_epoch=True, batch_size=n)
        self.kl_per_dim[stage].update(out.kl_per_dim, n)

    def on_validation_epoch_end(self) -> None:
        self.last_val_kl_per_dim = self._log_kl_per_dim("val")

    def on_test_epoch_end(self) -> None:
        self.last_test_kl_per_dim = self._log_kl_per_dim("test")

    def _log_kl_per_dim(self, stage: str) -> Tensor:
        metric = self.kl_per_dim[stage]
        kl = metric.compute()  # already reduced over DDP processes: the same on every rank
        metric.reset()
        width = max(2, len(str(self.hparams.latent_dim - 1)))
        # sync_dist only tells Lightning these are whole-run values; averaging equal values changes nothing.
        self.log_dict({f"{stage}/kl_dim/{i:0{width}d}": v for i, v in enumerate(kl)}, sync_dist=True)
        self.log(f"{stage}/active_units", (kl > ACTIVE_KL_NATS).sum().float(), sync_dist=True)
        return kl.detach().cpu()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, betas=tuple(self.hparams.adam_betas))

    # --- for evaluation and callbacks -----------------------------------------------------------------------

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Float images B x 3 x H x W in [0, 1] -> (mu, logvar)."""
        return self.model.encode(x)

    def decode(self, z: Tensor) -> Tensor:
        """Latents B x latent_dim -> decoder mean images B x 3 x H x W in [0, 1]."""
        return self.model.decode(z)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """The decoder mean at the posterior mean: the deterministic reconstruction of each image."""
        mu, _ = self.model.encode(x)
        return self.model.decode(mu)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n decoder-mean images from z ~ N(0, I). The noise is drawn on the generator's device (so a CPU
        generator gives the same faces on any device), then moved to the model's."""
        device = generator.device if generator is not None else self.device
        z = torch.randn(n, self.hparams.latent_dim, generator=generator, device=device)
        return self.model.decode(z.to(self.device))


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise FaceVAEError(message)
