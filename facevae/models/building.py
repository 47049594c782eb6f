"""The objects a LightningModule is given, recorded as the config nodes that build them, and built again from those.

A module receives built networks and an optimizer factory (`functools.partial`, what Hydra's `_partial_: true` makes),
as the model config says: `net: {_target_: facevae.models.BetaVAE, ...}`, `optimizer: {_target_: torch.optim.Adam,
_partial_: true, ...}`. Its hyperparameters keep those nodes as plain dicts, so `hparams.yaml` reads like the model
config and a checkpoint builds its module again with `hydra.utils.instantiate`. `RebuiltFromCheckpoint` does that
for `load_from_checkpoint`, after the module has turned the hyperparameters it was saved with (the flat arguments of
earlier checkpoints included) into its own (`arguments_from_hparams`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import hydra
import torch
from hydra.errors import InstantiationException
from omegaconf import ListConfig

from facevae.core import rules
from facevae.core.errors import FaceVAEError, require

OptimizerFactory = Callable[..., torch.optim.Optimizer]


def adam(lr: float = 1e-4, betas: Iterable[float] = (0.9, 0.999)) -> OptimizerFactory:
    """An Adam factory, as `{_target_: torch.optim.Adam, _partial_: true, lr: ..., betas: ...}` builds one."""
    return functools.partial(torch.optim.Adam, lr=lr, betas=list(betas))


# The seed's optimiser, Adam at 1e-4 (Kingma & Ba's betas), and Gulrajani et al.'s for the WGAN-GP.
SEED_ADAM = adam(1e-4, (0.9, 0.999))
WGAN_ADAM = adam(1e-4, (0.0, 0.9))


def optimizer_config(factory: OptimizerFactory) -> dict[str, Any]:
    """The config node that builds `factory` again: its class and its keyword arguments, as plain values."""
    require(
        isinstance(factory, functools.partial) and not factory.args,
        f"model.optimizer: a factory of keyword arguments ({{_partial_: true}}), not {type(factory).__name__}",
    )
    target = f"{factory.func.__module__}.{factory.func.__qualname__}"
    return {"_target_": target, "_partial_": True, **{k: plain(v) for k, v in factory.keywords.items()}}


def check_optimizer(node: Any, prefix: str) -> None:
    """The learning rate and Adam's betas of an optimizer node or factory, when it has them."""
    if isinstance(node, functools.partial):
        node = {"_partial_": True, **node.keywords}
    require(
        isinstance(node, dict) and node.get("_partial_") is True,
        f"{prefix}: must be a factory the model calls with its weights ({prefix}._partial_=true)",
    )
    if "lr" in node:
        rules.number(f"{prefix}.lr", node["lr"], above=0, why=" (the learning rate)")
    if "betas" in node:
        rules.number_list(f"{prefix}.betas", node["betas"], 2, 0, 1)


def plain(value: Any) -> Any:
    """Lists, tuples and Hydra's ListConfig as plain lists (hparams.yaml and checkpoints stay plain)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | ListConfig):
        return [plain(v) for v in value]
    return value


def build(node: dict[str, Any]) -> Any:
    """The object a recorded config node names (a network, an optimizer factory); a bad value in it is the
    network's own one-line error, not Hydra's wrapping of it."""
    try:
        return hydra.utils.instantiate(node, _convert_="all")
    except InstantiationException as err:
        if isinstance(err.__cause__, FaceVAEError):
            raise err.__cause__ from None
        raise


class RebuiltFromCheckpoint:
    """Mixin for a LightningModule whose arguments include built objects: `load_from_checkpoint` builds them from
    the saved hyperparameters, then loads the weights. A class using it defines `arguments_from_hparams`."""

    # What a ModelCheckpoint may choose the best checkpoint by, and which way is better ("min" or "max"); None where
    # no metric is fit to choose by, and the config's monitor is left to the training command.
    checkpoint_metrics: ClassVar[dict[str, str] | None] = None

    @classmethod
    def arguments_from_hparams(cls, hparams: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | Path,
        map_location: str | torch.device | None = None,
        strict: bool = True,
        **kwargs: Any,
    ) -> Any:
        """The module a checkpoint holds: built from its hyperparameters (`kwargs` win), its weights loaded, on
        `map_location` (a device) or the CPU."""
        # weights_only=True: our own checkpoints carry plain dicts of config beside the tensors.
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        arguments = cls.arguments_from_hparams(dict(checkpoint.get("hyper_parameters") or {}))
        model = cls(**{**arguments, **kwargs})
        model.on_load_checkpoint(checkpoint)
        model.load_state_dict(checkpoint["state_dict"], strict=strict)
        return model.to(map_location) if isinstance(map_location, str | torch.device) else model
