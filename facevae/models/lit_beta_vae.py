"""BetaVAEModule: trains a BetaVAE on face crops with the objectives in objectives.py, and logs what to watch.

Logged keys (nats per image unless said otherwise):
    train/loss train/recon train/kl   means over the steps since the last logged one (trainer.log_every_n_steps):
                                      step values stay on the device and are read once per interval
    train/beta                        the weight on the KL term now: beta * warm-up, or gamma * warm-up under
                                      the capacity objective
    train/beta_norm                   train/beta * latent_dim / (3 * H * W): Higgins et al.'s normalised beta
    train/capacity                    C now, only under the capacity objective
    train/sigma                       the decoder's standard deviation (its mean over pixels), only when it is learned
    val/loss val/recon val/kl         epoch means (test/... the same on the test set)
    val/psnr val/ssim                 of the decoder mean at the posterior mean mu
    val/kl_dim/00 ...                 each latent's mean KL over the epoch
    val/active_units_kl               latents whose mean KL exceeds ACTIVE_KL_NATS (evaluate.py's `active_units`
                                      is another measure: latents whose posterior mean varies over the data)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics.image import PeakSignalNoiseRatio

import facevae.models.speed as speed
from facevae.core import rules
from facevae.core.errors import FaceVAEError
from facevae.core.tensors import to_float_images
from facevae.models.beta_vae import BetaVAE, check_network
from facevae.models.building import (
    SEED_ADAM,
    OptimizerFactory,
    RebuiltFromCheckpoint,
    adam,
    build,
    check_optimizer,
    optimizer_config,
)
from facevae.models.kl_per_dim import ACTIVE_KL_NATS, KLPerDim
from facevae.models.objectives import VAELoss, beta_vae_loss, capacity_at, kl_warmup_weight, optimal_log_sigma
from facevae.models.ssim import SSIM

log = logging.getLogger(__name__)

# model.learn_sigma: false keeps model.sigma; true trains one log sigma by gradient with the other weights; the
# sigma-VAE's "optimal" and "optimal_per_pixel" set it to its maximum-likelihood value on every training batch
# (objectives.optimal_log_sigma).
SIGMA_MODES = (False, True, "optimal", "optimal_per_pixel")


class BetaVAEModule(RebuiltFromCheckpoint, pl.LightningModule):
    """A beta-VAE with a Gaussian decoder of fixed or learned sigma: trains the network `net` it is given (a BetaVAE)
    with the optimizer `optimizer` makes of its weights (Adam, by default as the seed's).

    Batches are dicts {"image": uint8 B x H x W x 3, "index": int64 B}; on_after_batch_transfer adds
    "x": float B x 3 x H x W in [0, 1] on the device. capacity_max (nats) switches to the controlled-capacity
    objective of Burgess et al. 2018: C rises linearly to capacity_max over capacity_steps; beta is unused.

    Speed switches, none of which changes what is computed (see speed.py): `compile` ("auto", false or a
    torch.compile mode) compiles the training loss and its backward when a fit starts, "auto" choosing per device;
    `cuda_graph` ("auto", true, false) records forward, loss and backward as one CUDA graph replayed every step;
    `channels_last` lays images and convolution weights out as NHWC. Precision is trainer.precision (bf16-mixed).

    The optimizer is stepped by training_step itself (Lightning's manual optimization): a replayed graph has
    already run the backward that Lightning's automatic loop would run, and the manual loop does less per step.
    How the step runs (eagerly, compiled, captured) and its device-side values are one component, `train_step`
    (speed.TrainingStep), which runs `objective` and starts the backward from `total`.

    A variant (StackedBetaVAEModule) overrides these hooks and nothing private: compute_loss (the objective's terms),
    total, kl_schedule, on_non_finite (what a non-finite loss does), log_step_values, evaluate_batch and
    log_kl_per_dim (what is logged, under which names).

    Its hyperparameters are its arguments with `net` and `optimizer` as the config nodes that build them, and
    `latent_dim` (the network's) beside them, for readers of a model that only need the size of its code.
    """

    # What it can do, for callbacks and analyses: encode images, decode codes, and reconstruct.
    encodes = True
    # One model (a stacked module holds many).
    stacked = False
    # What the configured ModelCheckpoint may choose the best checkpoint by; None where no metric is fit (the WGAN).
    checkpoint_monitor: str | None = "val/loss"
    # The settings that shape the weights (paths in its hyperparameters): a checkpoint resumes only into a model
    # built with the same.
    weight_settings = ("net.latent_dim", "net.channels", "net.hidden", "net.image_size", "learn_sigma")
    # What a ModelCheckpoint may choose the best checkpoint by, and which way is better.
    checkpoint_metrics = {
        "val/loss": "min",
        "val/neg_elbo": "min",
        "val/recon": "min",
        "val/kl": "min",
        "val/psnr": "max",
        "val/ssim": "max",
        "val/active_units": "max",
    }
    # Keys of its hyperparameters that record, not configure: left out when it is built again.
    recorded = ("latent_dim",)

    def __init__(
        self,
        net: BetaVAE,
        optimizer: OptimizerFactory = SEED_ADAM,
        beta: float = 1.0,
        sigma: float = 0.1,
        learn_sigma: bool | str = False,
        kl_warmup_steps: int = 0,
        capacity_max: float | None = None,
        capacity_steps: int = 100_000,
        capacity_gamma: float = 1000.0,
        compile: str | bool | None = "auto",
        cuda_graph: str | bool | None = "auto",
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False  # training_step steps Adam: see the class docstring
        BetaVAEModule.check_settings({k: v for k, v in locals().items() if k not in ("self", "__class__")})
        beta, sigma = float(beta), float(sigma)
        capacity_max = None if capacity_max is None else float(capacity_max)
        capacity_gamma = float(capacity_gamma)
        self.save_hyperparameters(ignore=["net", "optimizer"])
        self.hparams.update(net=net.config(), optimizer=optimizer_config(optimizer), latent_dim=net.latent_dim)
        self.make_optimizer = build(self.hparams.optimizer)  # with plain values: the optimizer state saves plain

        self.model = net
        # log sigma, not sigma: a learned scale stays positive without constraints. A buffer when not trained by
        # gradient, so it still follows the module to the device and into the checkpoint; the optimal modes keep
        # the last training batch's value there, which validation, test and evaluation use.
        log_sigma = torch.tensor(math.log(sigma))
        if learn_sigma == "optimal_per_pixel":
            log_sigma = log_sigma.expand(3, net.image_size, net.image_size).clone()
        if learn_sigma is True:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

        # Metric objects, one set per stage, accumulate over the epoch and synchronise across DDP processes.
        stages = ("val", "test")
        self.psnr = nn.ModuleDict({s: PeakSignalNoiseRatio(data_range=1.0) for s in stages})
        self.ssim = nn.ModuleDict({s: SSIM(data_range=1.0) for s in stages})
        self.kl_per_dim = nn.ModuleDict({s: KLPerDim(net.latent_dim) for s in stages})
        self.last_val_kl_per_dim: Tensor | None = None
        self.last_test_kl_per_dim: Tensor | None = None

        # How the training step runs (eagerly, compiled, captured) and its values, kept on the device: one component.
        # The hot path reads nothing from the device: validation losses too wait, in _val_losses.
        names = ["loss", "recon", "kl", *(["sigma"] if learn_sigma else [])]
        self.train_step = speed.TrainingStep(self.objective, self.total, names, compile, cuda_graph)
        self._val_losses: list[Tensor] = []

    @property
    def latent_dim(self) -> int:
        """The size of the code."""
        return self.model.latent_dim

    @staticmethod
    def check_settings(values: dict, prefix: str = "model") -> None:
        """Every value of the model config, before anything is built (facevae.validation runs this for each command;
        the network's own node, when given as one, is checked by its class)."""
        v = rules.with_defaults(BetaVAEModule.__init__, values)
        net = v.get("net")
        members = v.get("members", 1)
        if isinstance(net, dict) and members > 1:  # the stacked model's members together, as the net checks one
            net = rules.with_defaults(BetaVAE.__init__, {k: x for k, x in net.items() if not k.startswith("_")})
            check_network(
                net["latent_dim"], net["channels"], net["hidden"], net["image_size"], members, f"{prefix}.net"
            )
        check_optimizer(v["optimizer"], f"{prefix}.optimizer")
        if v["beta"] is not None:  # the stacked model's members take theirs from model.betas
            rules.number(f"{prefix}.beta", v["beta"], lo=0)
        rules.number(f"{prefix}.sigma", v["sigma"], above=0, why=" (the decoder's std on [0, 1] pixels)")
        rules.choice(f"{prefix}.learn_sigma", v["learn_sigma"], SIGMA_MODES)
        rules.whole(f"{prefix}.kl_warmup_steps", v["kl_warmup_steps"], lo=0, why=" (0 = off)")
        if v["capacity_max"] is not None:
            rules.number(f"{prefix}.capacity_max", v["capacity_max"], lo=0, why=" nats (or null: off)")
        rules.whole(f"{prefix}.capacity_steps", v["capacity_steps"], lo=0)
        rules.number(f"{prefix}.capacity_gamma", v["capacity_gamma"], lo=0)
        speed.compile_setting(v["compile"])
        speed.graph_setting(v["cuda_graph"])
        rules.flag(f"{prefix}.channels_last", v["channels_last"])

    @classmethod
    def upgrade_hparams(cls, hparams: dict[str, Any]) -> dict[str, Any]:
        """Saved hyperparameters in this module's form: those of a checkpoint whose arguments were flat (latent_dim,
        channels, hidden, image_size, lr, adam_betas beside beta) get their `net` and `optimizer` nodes."""
        hp = dict(hparams)
        if "net" in hp:
            return hp
        net = {key: hp.pop(key) for key in ("latent_dim", "channels", "hidden", "image_size") if key in hp}
        optimizer = adam(hp.pop("lr", 1e-4), hp.pop("adam_betas", (0.9, 0.999)))
        net_config = {"_target_": "facevae.models.BetaVAE", **net}
        return {"net": net_config, "optimizer": optimizer_config(optimizer), **hp, "latent_dim": net.get("latent_dim")}

    @classmethod
    def arguments_from_hparams(cls, hparams: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments, built, from saved hyperparameters (this module's form or the flat one)."""
        hp = {k: v for k, v in cls.upgrade_hparams(hparams).items() if k not in cls.recorded}
        return {**hp, "net": build(hp["net"]), "optimizer": build(hp["optimizer"])}

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

    def compute_loss(
        self, x: Tensor, weight: float | Tensor, capacity: float | Tensor | None
    ) -> tuple[VAELoss, Tensor]:
        """The objective's terms of a batch at this KL weight (and capacity), and the posterior means mu."""
        x_mean, mu, logvar, _ = self.model(x)
        log_sigma = self._decoder_log_sigma(x, x_mean)
        # One weight serves both objectives: beta_vae_loss reads beta without a capacity and gamma with one.
        out = beta_vae_loss(x, x_mean, mu, logvar, log_sigma, weight, capacity=capacity, gamma=weight)
        return out, mu

    def _decoder_log_sigma(self, x: Tensor, x_mean: Tensor) -> Tensor:
        """log sigma of the decoder for this batch: in training under an optimal mode, the maximum-likelihood
        value given these reconstructions (kept in the buffer); otherwise the parameter or the buffer."""
        mode = self.hparams.learn_sigma
        if mode not in ("optimal", "optimal_per_pixel") or not self.training:
            return self.log_sigma
        # No gradient through sigma: at its optimum the loss is flat in sigma, so the decoder's gradient is the same.
        with torch.no_grad():
            self.log_sigma.copy_(optimal_log_sigma(x, x_mean, per_pixel=mode == "optimal_per_pixel"))
        return self.log_sigma

    def objective(
        self, x: Tensor, weight: float | Tensor, capacity: float | Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(loss, recon, kl) of a training batch: the part torch.compile captures, with its backward."""
        out, _ = self.compute_loss(x, weight, capacity)
        return out.loss, out.recon.detach(), out.kl.detach()

    @staticmethod
    def total(loss: Tensor) -> Tensor:
        """What the backward starts from: the loss itself (the stacked model sums its members')."""
        return loss

    # --- Lightning hooks ------------------------------------------------------------------------------------

    def configure_model(self) -> None:
        if self.hparams.channels_last:  # 4-D weights NHWC, to match the NHWC images on_after_batch_transfer makes
            self.model.to(memory_format=torch.channels_last)

    def on_fit_start(self) -> None:
        autocast = "mixed" in str(self.trainer.precision)  # bf16-mixed, 16-mixed
        trainer = self.trainer
        step = self.train_step
        mode = step.start(self.parameters(), self.device.type, trainer.world_size, autocast, trainer.log_every_n_steps)
        log.info(
            "training step: %s%s on %s, channels_last %s, precision %s; step values read every %d steps",
            f"torch.compile mode={mode}" if mode else "eager",
            ", captured as one CUDA graph" if step.captured else "",
            self.device.type,
            self.hparams.channels_last,
            trainer.precision,
            step.read_every,
        )

    def on_fit_end(self) -> None:
        self.train_step.stop()

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Convert the uint8 channels-last crops on the device, where it is cheap, not in the loader workers:
        a uint8 batch is a quarter of the float one to copy."""
        if isinstance(batch, dict) and "image" in batch:
            memory_format = torch.channels_last if self.hparams.channels_last else torch.contiguous_format
            batch = {**batch, "x": to_float_images(batch["image"], memory_format)}
        return batch

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        optimizer = self.optimizers()
        loss = self.training_loss(batch, batch_idx)
        if not self.train_step.ran_backward:  # a replayed graph has already run its backward
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(self.total(loss))
        optimizer.step()

    def training_loss(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """The loss of one training batch, eager or compiled and ready for backward, or replayed by the captured
        step with its backward already run; its values are kept (and read, logged and checked every N steps)."""
        x = batch["x"]
        weight, capacity = self.kl_schedule()
        loss, recon, kl = self.train_step(x, weight, capacity)
        sigma = [self.log_sigma.detach().exp().mean()] if self.hparams.learn_sigma else []
        self.train_step.values.add(self.global_step, [loss, recon, kl, *sigma])
        if self._read_due(batch_idx):
            self.log_step_values(weight, capacity, x.shape)
        return loss

    def _read_due(self, batch_idx: int) -> bool:
        """Whether this step reads the step values: at Lightning's logging steps, at an epoch's last batch (so the
        NaN check and the logged values are current before validation and checkpoints), and at every step outside
        trainer.fit."""
        if self.train_step.read_every is None:
            return True
        last_batch = batch_idx + 1 >= self.trainer.num_training_batches or self.trainer.should_stop
        return self.train_step.read_due(self.global_step, last_batch)

    def log_step_values(self, weight: float, capacity: float | None, shape: torch.Size) -> None:
        """Read the steps since the last read from the device (the one wait), stop on a NaN, log their means.

        Everything logged is a CPU tensor, so neither Lightning's progress-bar values (converted after every batch)
        nor its loggers touch the device again."""
        first, values = self.train_step.values.read()
        self.check_step_losses(first, values[:, 0])
        mean = dict(zip(self.train_step.values.names, values.mean(dim=0), strict=True))
        n, c, h, w = shape
        self.log("train/loss", mean["loss"], prog_bar=True, on_step=True, on_epoch=False, batch_size=n)
        logged = {
            "train/recon": mean["recon"],
            "train/kl": mean["kl"],
            "train/beta": torch.tensor(weight),
            "train/beta_norm": torch.tensor(weight * self.latent_dim / (c * h * w)),
        }
        if capacity is not None:
            logged["train/capacity"] = torch.tensor(capacity)
        if "sigma" in mean:
            logged["train/sigma"] = mean["sigma"]
        self.log_dict(logged, on_step=True, on_epoch=False, batch_size=n)

    def check_step_losses(self, first_step: int, losses: Tensor) -> None:
        """A non-finite training loss among steps first_step, first_step + 1, ...: a NaN poisons every weight at the
        next step, so it is acted on (`on_non_finite`), naming the step, before the weights reach a checkpoint."""
        epoch = self.current_epoch
        self.on_non_finite(losses, lambda i, value: f"loss is {value} at step {first_step + i} (epoch {epoch})")

    def on_non_finite(self, losses: Tensor, describe: Callable[[int, float], str]) -> None:
        """What a non-finite loss does: the run stops, saying `describe(index, value)` of the first. losses holds
        one value per step or validation batch (and a column per member in a stacked model, which overrides this)."""
        bad = speed.first_non_finite(0, losses)
        if bad is not None:
            raise FaceVAEError(f"{describe(*bad)}; stopping — the last good checkpoint is kept")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Steps not yet read may hold a NaN: a checkpoint written now (every_n_train_steps, mid-epoch validation)
        # must not carry their weights.
        values = self.train_step.values
        if len(values):
            self.check_step_losses(values.first_step, values.peek()[:, 0])

    def on_validation_epoch_start(self) -> None:
        self._val_losses = []

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        out = self.evaluate_batch(batch["x"], "val")
        self._val_losses.append(out.loss.detach())
        if self._last_val_batch(batch_idx, dataloader_idx):
            self.check_val_losses()

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self.evaluate_batch(batch["x"], "test")

    def _last_val_batch(self, batch_idx: int, dataloader_idx: int) -> bool:
        if self.train_step.read_every is None:  # outside trainer.fit: check every batch
            return True
        trainer = self.trainer
        batches = trainer.num_sanity_val_batches if trainer.sanity_checking else trainer.num_val_batches
        return batch_idx + 1 >= batches[dataloader_idx]

    def check_val_losses(self) -> None:
        """A non-finite validation loss, acted on (`on_non_finite`). Read once per validation, at its last batch:
        before the epoch-end callbacks draw from diverged weights and before a checkpoint is written."""
        losses = torch.stack(self._val_losses).cpu()
        epoch = self.current_epoch
        self.on_non_finite(
            losses, lambda _, value: f"validation loss is {value} at epoch {epoch}: the weights diverged"
        )

    def evaluate_batch(self, x: Tensor, stage: str) -> VAELoss:
        """Log a validation or test batch's losses and image quality; the objective is training's at this step, so
        val/loss and train/loss compare."""
        out, mu = self.compute_loss(x, *self.kl_schedule())
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
        return out

    def on_validation_epoch_end(self) -> None:
        self.last_val_kl_per_dim = self.log_kl_per_dim("val")

    def on_test_epoch_end(self) -> None:
        self.last_test_kl_per_dim = self.log_kl_per_dim("test")

    def log_kl_per_dim(self, stage: str) -> Tensor:
        """Log each latent's mean KL over the epoch and the active latents; returns the KLs, on the CPU."""
        metric = self.kl_per_dim[stage]
        kl = metric.per_dim()  # already reduced over DDP processes: the same on every rank
        metric.reset()
        width = max(2, len(str(self.latent_dim - 1)))
        # sync_dist only tells Lightning these are whole-run values; averaging equal values changes nothing.
        self.log_dict({f"{stage}/kl_dim/{i:0{width}d}": v for i, v in enumerate(kl)}, sync_dist=True)
        self.log(f"{stage}/active_units_kl", (kl > ACTIVE_KL_NATS).sum().float(), sync_dist=True)
        return kl.detach().cpu()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # On a GPU, Adam's fused kernel updates every weight in one launch instead of several per step; the same
        # arithmetic. (Lightning moves the module to its device before asking for the optimizer.)
        return self.make_optimizer(self.parameters(), fused=self.device.type == "cuda")

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
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return self.model.decode(z.to(self.device))
