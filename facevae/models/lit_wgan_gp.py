"""WGANGPModule: trains the DCGAN generator and critic of wgan_gp.py with the WGAN-GP objective, the seed's baseline.

Each training batch of real crops is one critic step; every n_critic-th batch is followed by one generator step
(Gulrajani et al. 2017, Algorithm 1: n_critic = 5, lambda = 10, Adam at 1e-4 with betas (0, 0.9) for both). So
after k batches the critic has stepped k times and the generator k // n_critic times, and Lightning's global_step,
which counts every optimiser step of manual optimisation, is k + k // n_critic.

Logged keys:
    train/critic_loss   E[D(fake)] - E[D(real)] + lambda * penalty, every batch
    train/wasserstein   E[D(real)] - E[D(fake)], the critic's estimate of the Wasserstein-1 distance, every batch
    train/gp            the gradient penalty, without lambda, every batch
    train/gen_loss      -E[D(G(z))], every generator step
    val/wasserstein     the estimate on val crops against as many samples (fixed z per batch); test/... on test

Distances are in the networks' [-1, 1] pixel units, as in the reference implementations.

Checkpoints: the critic's estimate is no model-selection metric. It measures the current critic as much as the
generator (an untrained critic gives ~0, the "best" score, at epoch 0), and moves whenever the critic does. So this
module says `checkpoint_monitor = None` and training keeps the latest checkpoint as "best"
(facevae.training.checkpoint_monitor); compare checkpoints with evaluate.py's sample measures instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from facevae.core import rules
from facevae.core.errors import FaceVAEError
from facevae.core.tensors import to_float_images
from facevae.models.wgan_gp import Critic, Generator, check_networks, gradient_penalty


class WGANGPModule(pl.LightningModule):
    """A WGAN-GP on face crops. Batches are dicts {"image": uint8 B x H x W x 3, "index": int64 B}, as the
    beta-VAE's; on_after_batch_transfer adds "x": float B x 3 x H x W in [-1, 1], the critic's range.

    For callbacks and analyses it offers what the beta-VAE offers of a generative model: `decode(z)` (the
    generator, images in [0, 1]), `sample(n)` and `hparams.latent_dim`, and no `encode` or `reconstruct`.
    """

    # No validation metric fit to choose checkpoints by: see the module docstring.
    checkpoint_monitor: str | None = None
    # The settings that shape the weights: a checkpoint resumes only into a model built with the same.
    weight_settings = ("latent_dim", "width", "image_size", "critic_layer_norm")

    def __init__(
        self,
        latent_dim: int = 32,
        width: int = 64,
        image_size: int = 64,
        critic_layer_norm: bool = False,
        n_critic: int = 5,
        gp_weight: float = 10.0,
        lr: float = 1e-4,
        adam_betas: Sequence[float] = (0.0, 0.9),
    ) -> None:
        super().__init__()
        WGANGPModule.check_settings({k: v for k, v in locals().items() if k not in ("self", "__class__")})
        adam_betas = [float(b) for b in adam_betas]  # a plain list from a YAML ListConfig: hparams stay plain
        gp_weight, lr = float(gp_weight), float(lr)
        self.save_hyperparameters()
        self.automatic_optimization = False  # two networks, stepped n_critic : 1

        self.generator = Generator(latent_dim, width, image_size)
        self.critic = Critic(width, image_size, critic_layer_norm)
        self.critic_steps = 0  # decides when the generator steps; saved in checkpoints so a resumed run keeps time
        # Whether every loss since the last check was finite: a tensor, so checking costs a sync only at the check.
        self._finite: Tensor | None = None

    @staticmethod
    def check_settings(values: dict, prefix: str = "model") -> None:
        """Every value of the model config, before anything is built (facevae.validation runs this for each command)."""
        v = rules.with_defaults(WGANGPModule.__init__, values)
        check_networks(v["latent_dim"], v["width"], v["image_size"])
        rules.flag(f"{prefix}.critic_layer_norm", v["critic_layer_norm"])
        rules.whole(f"{prefix}.n_critic", v["n_critic"], 1, 100, why=" critic steps per generator step")
        rules.number(f"{prefix}.gp_weight", v["gp_weight"], lo=0)
        rules.number(f"{prefix}.lr", v["lr"], above=0, why=" (the learning rate)")
        rules.number_list(f"{prefix}.adam_betas", v["adam_betas"], 2, 0, 1)

    # --- the generator, as the beta-VAE's decoder is used -----------------------------------------------------

    def decode(self, z: Tensor) -> Tensor:
        """Latents B x latent_dim -> generated images B x 3 x H x W in [0, 1], the range of the crops."""
        return (self.generator(z) + 1) / 2

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n generated images from z ~ N(0, I), in [0, 1]. The noise is drawn on the torch generator's device (a
        CPU one gives the same faces on any device), then moved to the model's."""
        device = generator.device if generator is not None else self.device
        z = torch.randn(n, self.hparams.latent_dim, generator=generator, device=device)
        return self.decode(z.to(self.device))

    def _noise(self, n: int) -> Tensor:
        return torch.randn(n, self.hparams.latent_dim, device=self.device)

    # --- training ---------------------------------------------------------------------------------------------

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 crops -> [-1, 1] floats on the device (cheap there; a uint8 batch is a quarter to copy)."""
        if isinstance(batch, dict) and "image" in batch:
            batch = {**batch, "x": to_float_images(batch["image"]) * 2 - 1}
        return batch

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        opt_g, opt_c = self.optimizers()
        real = batch["x"]
        n = real.shape[0]

        # Critic: push scores of real crops up and of samples down, its gradient norm held near 1 by the penalty.
        with self.toggled_optimizer(opt_c):
            with torch.no_grad():
                fake = self.generator(self._noise(n))
            wasserstein = self.critic(real).mean() - self.critic(fake).mean()
            gp = gradient_penalty(self.critic, real, fake)
            critic_loss = -wasserstein + self.hparams.gp_weight * gp
            opt_c.zero_grad(set_to_none=True)
            self.manual_backward(critic_loss)
            opt_c.step()
        self.critic_steps += 1
        self._track_finite(critic_loss)
        log = {"train/critic_loss": critic_loss, "train/gp": gp}
        self.log("train/wasserstein", wasserstein, prog_bar=True, on_step=True, on_epoch=False, batch_size=n)

        if self.critic_steps % self.hparams.n_critic == 0:
            # Generator: raise the critic's score of its samples. Checked before it steps, at most every n_critic
            # batches: a non-finite loss stops the run before the weights it poisons can reach a checkpoint.
            with self.toggled_optimizer(opt_g):
                gen_loss = -self.critic(self.generator(self._noise(n))).mean()
                self._track_finite(gen_loss)
                self._check_finite()
                opt_g.zero_grad(set_to_none=True)
                self.manual_backward(gen_loss)
                opt_g.step()
            log["train/gen_loss"] = gen_loss
        self.log_dict(log, on_step=True, on_epoch=False, batch_size=n)

    def _track_finite(self, loss: Tensor) -> None:
        finite = torch.isfinite(loss.detach())
        self._finite = finite if self._finite is None else self._finite & finite

    def _check_finite(self) -> None:
        """Raise if any loss since the last check was NaN or infinite (one host sync, here only)."""
        if self._finite is not None and not bool(self._finite):
            raise FaceVAEError(
                f"a critic or generator loss is not finite by step {self.global_step} (epoch {self.current_epoch}); "
                "stopping — the last good checkpoint is kept"
            )
        self._finite = None

    def on_train_epoch_end(self) -> None:
        self._check_finite()  # before ModelCheckpoint's epoch-end save, which runs after this hook

    def on_validation_epoch_start(self) -> None:
        self._check_finite()  # before a checkpoint saved at the end of this validation

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["wgan_critic_steps"] = self.critic_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.critic_steps = int(checkpoint.get("wgan_critic_steps", 0))

    # --- validation -------------------------------------------------------------------------------------------

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._estimate(batch["x"], batch_idx, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._estimate(batch["x"], batch_idx, "test")

    def _estimate(self, real: Tensor, batch_idx: int, stage: str) -> None:
        # The same z for a batch every epoch, so the estimate moves with the networks only, not with the noise.
        seeded = torch.Generator().manual_seed(batch_idx)
        z = torch.randn(real.shape[0], self.hparams.latent_dim, generator=seeded).to(self.device)
        estimate = self.critic(real).mean() - self.critic(self.generator(z)).mean()
        self.log(f"{stage}/wasserstein", estimate, on_step=False, on_epoch=True, batch_size=len(real), sync_dist=True)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        hp = self.hparams
        betas = tuple(hp.adam_betas)
        return [
            torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=betas),
            torch.optim.Adam(self.critic.parameters(), lr=hp.lr, betas=betas),
        ]
