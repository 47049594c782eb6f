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

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from facevae.core import rules
from facevae.core.errors import FaceVAEError, require
from facevae.core.tensors import to_float_images
from facevae.models.building import (
    WGAN_ADAM,
    OptimizerFactory,
    RebuiltFromCheckpoint,
    adam,
    build,
    check_optimizer,
    optimizer_config,
)
from facevae.models.wgan_gp import Critic, Generator, gradient_penalty


class WGANGPModule(RebuiltFromCheckpoint, pl.LightningModule):
    """A WGAN-GP on face crops: trains the `generator` and `critic` it is given, each with its own optimizer that
    `optimizer` makes (Adam, by default as Gulrajani et al.'s). Batches are dicts {"image": uint8 B x H x W x 3,
    "index": int64 B}, as the beta-VAE's; on_after_batch_transfer adds "x": float B x 3 x H x W in [-1, 1], the
    critic's range.

    For callbacks and analyses it offers what the beta-VAE offers of a generative model: `decode(z)` (the
    generator, images in [0, 1]), `sample(n)` and `latent_dim`, and no `encode` or `reconstruct` (`encodes` is
    False). Its hyperparameters are its arguments with the networks and the optimizer as the config nodes that
    build them, and `latent_dim` beside them.
    """

    encodes = False  # a generator only: no encoder, no reconstructions
    stacked = False
    # No validation metric fit to choose checkpoints by: see the module docstring.
    checkpoint_monitor: str | None = None
    # The settings that shape the weights (paths in its hyperparameters): a checkpoint resumes only into a model
    # built with the same.
    weight_settings = (
        "generator.latent_dim",
        "generator.width",
        "generator.image_size",
        "critic.width",
        "critic.image_size",
        "critic.layer_norm",
    )
    recorded = ("latent_dim",)  # kept in its hyperparameters for readers; not an argument

    def __init__(
        self,
        generator: Generator,
        critic: Critic,
        optimizer: OptimizerFactory = WGAN_ADAM,
        n_critic: int = 5,
        gp_weight: float = 10.0,
    ) -> None:
        super().__init__()
        WGANGPModule.check_settings({k: v for k, v in locals().items() if k not in ("self", "__class__")})
        gp_weight = float(gp_weight)
        self.save_hyperparameters(ignore=["generator", "critic", "optimizer"])
        self.hparams.update(
            generator=generator.config(),
            critic=critic.config(),
            optimizer=optimizer_config(optimizer),
            latent_dim=generator.latent_dim,
        )
        self.automatic_optimization = False  # two networks, stepped n_critic : 1
        self.make_optimizer = build(self.hparams.optimizer)  # with plain values: the optimizer state saves plain

        self.generator = generator
        self.critic = critic
        self.critic_steps = 0  # decides when the generator steps; saved in checkpoints so a resumed run keeps time
        # Whether every loss since the last check was finite: a tensor, so checking costs a sync only at the check.
        self._finite: Tensor | None = None

    @property
    def latent_dim(self) -> int:
        """The size of the generator's input."""
        return self.generator.latent_dim

    @staticmethod
    def check_settings(values: dict, prefix: str = "model") -> None:
        """Every value of the model config, before anything is built (facevae.validation runs this for each command;
        the networks' nodes are checked by their classes)."""
        v = rules.with_defaults(WGANGPModule.__init__, values)
        generator, critic = v.get("generator"), v.get("critic")
        if isinstance(generator, dict) and isinstance(critic, dict):
            require(
                generator.get("image_size") == critic.get("image_size"),
                f"{prefix}.critic.image_size={critic.get('image_size')}, {prefix}.generator.image_size="
                f"{generator.get('image_size')}: the critic judges the generator's images, so both take data.size",
            )
        check_optimizer(v["optimizer"], f"{prefix}.optimizer")
        rules.whole(f"{prefix}.n_critic", v["n_critic"], 1, 100, why=" critic steps per generator step")
        rules.number(f"{prefix}.gp_weight", v["gp_weight"], lo=0)

    @classmethod
    def upgrade_hparams(cls, hparams: dict[str, Any]) -> dict[str, Any]:
        """Saved hyperparameters in this module's form: those of a checkpoint whose arguments were flat (latent_dim,
        width, image_size, critic_layer_norm, lr, adam_betas) get their generator, critic and optimizer nodes."""
        hp = dict(hparams)
        if "generator" in hp:
            return hp
        latent_dim, width, size = hp.pop("latent_dim", 32), hp.pop("width", 64), hp.pop("image_size", 64)
        generator = {
            "_target_": "facevae.models.Generator",
            "latent_dim": latent_dim,
            "width": width,
            "image_size": size,
        }
        layer_norm = hp.pop("critic_layer_norm", False)
        critic = {"_target_": "facevae.models.Critic", "width": width, "image_size": size, "layer_norm": layer_norm}
        optimizer = optimizer_config(adam(hp.pop("lr", 1e-4), hp.pop("adam_betas", (0.0, 0.9))))
        return {"generator": generator, "critic": critic, "optimizer": optimizer, **hp, "latent_dim": latent_dim}

    @classmethod
    def arguments_from_hparams(cls, hparams: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments, built, from saved hyperparameters (this module's form or the flat one)."""
        hp = {k: v for k, v in cls.upgrade_hparams(hparams).items() if k not in cls.recorded}
        return {**hp, **{key: build(hp[key]) for key in ("generator", "critic", "optimizer")}}

    # --- the generator, as the beta-VAE's decoder is used -----------------------------------------------------

    def decode(self, z: Tensor) -> Tensor:
        """Latents B x latent_dim -> generated images B x 3 x H x W in [0, 1], the range of the crops."""
        return (self.generator(z) + 1) / 2

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n generated images from z ~ N(0, I), in [0, 1]. The noise is drawn on the torch generator's device (a
        CPU one gives the same faces on any device), then moved to the model's."""
        device = generator.device if generator is not None else self.device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return self.decode(z.to(self.device))

    def _noise(self, n: int) -> Tensor:
        return torch.randn(n, self.latent_dim, device=self.device)

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
        z = torch.randn(real.shape[0], self.latent_dim, generator=seeded).to(self.device)
        estimate = self.critic(real).mean() - self.critic(self.generator(z)).mean()
        self.log(f"{stage}/wasserstein", estimate, on_step=False, on_epoch=True, batch_size=len(real), sync_dist=True)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.make_optimizer(self.generator.parameters()), self.make_optimizer(self.critic.parameters())]
