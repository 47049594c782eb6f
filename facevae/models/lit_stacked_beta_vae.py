"""StackedBetaVAEModule: a beta sweep as one LightningModule, each beta a member of a StackedBetaVAE.

`python train.py sweep=beta_stacked` trains model.betas side by side in one process. The training step, its compile
and CUDA-graph capture and the device-side step values are BetaVAEModule's (its `train_step`); this module overrides
its documented hooks: the objective has one value per member (compute_loss), the backward starts from their sum
(total), a non-finite loss marks its member diverged (check_step_losses, check_val_losses), and each member's values
are logged under its prefix. The members share no weight, so each
one's gradient is its own loss's, and Adam's update is elementwise: each member trains as a run of its own would.

Every value is logged under the member's prefix (`member2/val/loss`); facevae.members gives each member its own
loggers (W&B run, CSV, TensorBoard) that see their own values under the usual names, its own checkpoints and its
own job directory, so `evaluate.py sweep_dir=` compares the members like the jobs of a multirun.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import vmap
from torchmetrics.image import PeakSignalNoiseRatio

import facevae.models.speed as speed
from facevae.core import rules
from facevae.core.errors import FaceVAEError, require
from facevae.models.beta_vae import BetaVAE
from facevae.models.building import SEED_ADAM, OptimizerFactory, plain
from facevae.models.kl_per_dim import ACTIVE_KL_NATS, KLPerDim
from facevae.models.lit_beta_vae import BetaVAEModule
from facevae.models.objectives import VAELoss, beta_vae_loss, kl_warmup_weight
from facevae.models.ssim import SSIM
from facevae.models.stacked_beta_vae import StackedBetaVAE

log = logging.getLogger(__name__)

MEMBER_PREFIX = "member"


def member_prefix(k: int) -> str:
    """What member k's logged values are named under: `member0/`, `member1/`, ..."""
    return f"{MEMBER_PREFIX}{k}/"


def _member_loss(x: Tensor, x_mean: Tensor, mu: Tensor, logvar: Tensor, log_sigma: Tensor, beta: Tensor) -> tuple:
    out = beta_vae_loss(x, x_mean, mu, logvar, log_sigma, beta)
    return out.loss, out.recon, out.kl, out.kl_per_dim


class StackedBetaVAEModule(BetaVAEModule):
    """BetaVAEModule's model and objective for each beta of `betas`, trained as one vectorised model.

    `vmap` runs the members as one vectorised network ("auto": on a GPU; see stacked_beta_vae.py) or, when off, one
    after another on their slices of the stacked weights. All other arguments are BetaVAEModule's and shared by every
    member. Not stacked (run these as jobs, sweep=beta): the capacity objective, a learned sigma and channels_last.
    encode, decode, reconstruct and sample are BetaVAEModule's, with the members first in what they return.
    """

    stacked = True  # one model's figures do not apply (facevae.callbacks): evaluate.py sweep_dir= draws each member

    def __init__(
        self,
        net: BetaVAE,
        optimizer: OptimizerFactory = SEED_ADAM,
        betas: Sequence[float] = (1.0, 2.0, 4.0, 8.0, 16.0),
        beta: float | None = None,
        vmap: bool | str = "auto",
        **kwargs: Any,
    ):
        self.check_settings({"net": net, "optimizer": optimizer, "betas": betas, "beta": beta, "vmap": vmap, **kwargs})
        betas = [float(b) for b in betas]
        super().__init__(net, optimizer, **kwargs)
        # Plain values, not Hydra's ListConfig, in hparams.yaml and checkpoints (a checkpoint must load weights_only).
        self.hparams.update(betas=betas, **{k: plain(v) for k, v in kwargs.items()})
        del self.hparams["beta"]  # each member's is in betas
        k, latent_dim = len(betas), net.latent_dim
        # Every member starts from the weights a run of its own would start from at this seed: `net`'s.
        self.model = StackedBetaVAE(net, k, vmap=vmap)
        self.register_buffer("betas", torch.tensor(betas), persistent=False)
        stages = ("val", "test")
        self.psnr = nn.ModuleDict(
            {s: nn.ModuleList(PeakSignalNoiseRatio(data_range=1.0) for _ in betas) for s in stages}
        )
        self.ssim = nn.ModuleDict({s: nn.ModuleList(SSIM(data_range=1.0) for _ in betas) for s in stages})
        self.kl_per_dim = nn.ModuleDict({s: KLPerDim((k, latent_dim)) for s in stages})
        self.diverged: dict[int, str] = {}  # member -> why it stopped learning (a non-finite loss)

    @staticmethod
    def check_settings(values: dict, prefix: str = "model") -> None:
        """model.betas and model.vmap, then every BetaVAEModule setting the members share."""
        betas = values.get("betas", (1.0, 2.0, 4.0, 8.0, 16.0))
        listed = isinstance(betas, Sequence) and not isinstance(betas, str)
        require(listed, f"{prefix}.betas={rules.shown(betas)}: a list of betas, e.g. {prefix}.betas=[1,2,4]")
        require(len(betas) >= 1, f"{prefix}.betas=[]: a stacked model needs at least one beta")
        for b in betas:
            rules.number(f"{prefix}.betas={rules.shown(betas)}: each beta", b, lo=0)
        once = len(set(betas)) == len(betas)
        require(once, f"{prefix}.betas={rules.shown(betas)}: each beta once (a member is named by its beta)")
        beta = values.get("beta")
        require(
            beta is None, f"{prefix}.beta={beta}: a stacked model trains each of {prefix}.betas; set {prefix}.beta=null"
        )
        rules.choice(f"{prefix}.vmap", values.get("vmap", "auto"), ("auto", True, False), why=" (auto: on a GPU)")
        for key, off in (("capacity_max", None), ("learn_sigma", False), ("channels_last", False)):
            require(
                values.get(key, off) == off,
                f"{prefix}.{key}={values.get(key)}: not vectorised across betas; run the sweep as jobs instead "
                "(python train.py -m model.beta=1,2,4 ..., or sweep=beta)",
            )
        shared = {k: v for k, v in values.items() if k not in ("betas", "vmap")}
        BetaVAEModule.check_settings({**shared, "beta": None, "members": len(betas)}, prefix)

    # --- the members ----------------------------------------------------------------------------------------

    @property
    def members(self) -> list[float]:
        """The members' betas, in member order."""
        return list(self.hparams.betas)

    def member_hparams(self, k: int) -> dict[str, Any]:
        """Member k's hyperparameters as a BetaVAEModule: what a run of its own would have been given and recorded."""
        hp = {key: value for key, value in self.hparams.items() if key not in ("betas", "vmap")}
        return {**hp, "beta": self.members[k]}

    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member k's weights as a BetaVAEModule state dict, on the CPU."""
        state = {f"model.{name}": value for name, value in self.model.member_state(k).items()}
        return {**state, "log_sigma": self.log_sigma.detach().cpu().clone()}

    def load_member(self, k: int, state: dict[str, Tensor]) -> None:
        """Member k's weights from a BetaVAEModule state dict (a member checkpoint's)."""
        self.model.load_member(k, {n[len("model.") :]: v for n, v in state.items() if n.startswith("model.")})

    # --- the objective --------------------------------------------------------------------------------------

    def kl_schedule(self) -> tuple[float, None]:
        """(the KL warm-up factor, no capacity): each member's KL weight is its beta times this factor."""
        return kl_warmup_weight(self.global_step, self.hparams.kl_warmup_steps), None

    def compute_loss(self, x: Tensor, weight: float | Tensor, capacity: None) -> tuple[VAELoss, Tensor]:
        x_mean, mu, logvar, _ = self.model(x)
        loss = vmap(_member_loss, in_dims=(None, 0, 0, 0, None, 0))(
            x, x_mean, mu, logvar, self.log_sigma, self.betas * weight
        )
        return VAELoss(*loss), mu

    @staticmethod
    def total(loss: Tensor) -> Tensor:
        return loss.sum()  # the members share no weight: each one's gradient is its own loss's

    # --- a member that diverges fails alone, as a sweep's job would ------------------------------------------

    def on_non_finite(self, losses: Tensor, describe: Callable[[int, float], str]) -> None:
        """losses: steps (or validation batches) x members. Each member not yet diverged whose column holds a
        non-finite value is marked so, with `describe`'s reason, and the others train on: its checkpoints stay as they
        were and its status says failed. Stops the run when every member has."""
        new = []
        for k, beta in enumerate(self.members):
            bad = None if k in self.diverged else speed.first_non_finite(0, losses[:, k])
            if bad is not None:
                self.diverged[k] = f"beta={beta:g}: {describe(*bad)}"
                new.append(self.diverged[k])
        if len(self.diverged) == len(self.members):
            raise FaceVAEError(f"every beta diverged ({'; '.join(self.diverged.values())}); stopping")
        for reason in new:
            log.warning("%s; its last good checkpoints are kept, the other betas train on", reason)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["diverged"] = dict(self.diverged)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.diverged = {int(k): str(v) for k, v in checkpoint.get("diverged", {}).items()}

    # --- logging, per member --------------------------------------------------------------------------------

    def log_step_values(self, weight: float, capacity: None, shape: torch.Size) -> None:
        first, values = self.train_step.values.read()  # steps x (loss, recon, kl) x members
        self.check_step_losses(first, values[:, 0])
        mean = values.mean(dim=0)
        n, c, h, w = shape
        for k, beta in enumerate(self.members):
            p = member_prefix(k)
            logged = {
                f"{p}train/loss": mean[0, k],
                f"{p}train/recon": mean[1, k],
                f"{p}train/kl": mean[2, k],
                f"{p}train/beta": torch.tensor(beta * weight),
                f"{p}train/beta_norm": torch.tensor(beta * weight * self.latent_dim / (c * h * w)),
            }
            self.log_dict(logged, on_step=True, on_epoch=False, batch_size=n)

    def evaluate_batch(self, x: Tensor, stage: str) -> VAELoss:
        out, mu = self.compute_loss(x, *self.kl_schedule())
        x_hat = self.model.decode(mu).clamp(0.0, 1.0)
        n = x.shape[0]
        for k in range(len(self.members)):
            p = f"{member_prefix(k)}{stage}"
            log = {f"{p}/loss": out.loss[k], f"{p}/recon": out.recon[k], f"{p}/kl": out.kl[k]}
            log[f"{p}/neg_elbo"] = out.recon[k] + out.kl[k]
            self.log_dict(log, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
            psnr, ssim = self.psnr[stage][k], self.ssim[stage][k]
            psnr.update(x_hat[k], x)
            ssim.update(x_hat[k], x)
            self.log(f"{p}/psnr", psnr, on_step=False, on_epoch=True, batch_size=n)
            self.log(f"{p}/ssim", ssim, on_step=False, on_epoch=True, batch_size=n)
        self.kl_per_dim[stage].update(out.kl_per_dim, n)
        return out

    def log_kl_per_dim(self, stage: str) -> Tensor:
        metric = self.kl_per_dim[stage]
        kl = metric.per_dim()  # members x latent_dim
        metric.reset()
        width = max(2, len(str(self.latent_dim - 1)))
        for k in range(len(self.members)):
            p = f"{member_prefix(k)}{stage}"
            self.log_dict({f"{p}/kl_dim/{i:0{width}d}": v for i, v in enumerate(kl[k])}, sync_dist=True)
            self.log(f"{p}/active_units_kl", (kl[k] > ACTIVE_KL_NATS).sum().float(), sync_dist=True)
        return kl.detach().cpu()
