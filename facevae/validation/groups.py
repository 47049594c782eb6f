"""Groups that name a class to build (`_target_`): the class exists, takes every key given, and its rules pass.

A facevae class brings its own rules (`check_settings`); the rules for Lightning's callbacks are here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from facevae.core import rules
from facevae.core.errors import require
from facevae.validation.values import UNRESOLVED


def built(prefix: str, node: Any) -> type:
    """A group that names a class: the class exists, takes every key given, and its own rules pass."""
    require(isinstance(node, dict) and "_target_" in node, f"{prefix}: must name a class (_target_) to build")
    cls = target_class(prefix, node["_target_"])
    values = {k: v for k, v in node.items() if not k.startswith("_")}
    rules.known_keys(prefix, values, cls.__init__, cls.__name__)
    for key, child in values.items():  # the objects it is given built (a network, an optimizer): each by its rules
        if isinstance(child, dict) and "_target_" in child:
            built(f"{prefix}.{key}", child)
    check = cls.check_settings if isinstance(cls, rules.Configurable) else LIGHTNING_RULES.get(cls.__name__)
    if check is not None:
        check({k: v for k, v in values.items() if v is not UNRESOLVED}, prefix)
    return cls


def target_class(prefix: str, target: Any) -> type:
    rules.text(f"{prefix}._target_", target)
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        cls = None
    require(isinstance(cls, type), f"{prefix}._target_={target}: no such class")
    return cls


def same_size(v: dict) -> None:
    """Each network the model is given takes the crops' size."""
    size = v["data"].get("size")
    networks = {key: node for key, node in v["model"].items() if isinstance(node, dict) and "image_size" in node}
    for key, node in networks.items():
        image_size = node["image_size"]
        require(
            image_size is UNRESOLVED or image_size == size,
            f"model.{key}.image_size={image_size}, data.size={size}: the model must take the crops' size "
            f"(leave model.{key}.image_size at ${{data.size}})",
        )


def _model_checkpoint(values: dict, prefix: str) -> None:
    rules.text(f"{prefix}.monitor", values.get("monitor"), optional=True)
    rules.choice(f"{prefix}.mode", values.get("mode", "min"), ("min", "max"))
    top_k = rules.whole(f"{prefix}.save_top_k", values.get("save_top_k", 1), lo=-1, why=" (-1 keeps every one)")
    last = rules.choice(f"{prefix}.save_last", values.get("save_last"), (True, False, None, "link"))
    require(top_k != 0 or last, f"{prefix}.save_top_k=0 with save_last={rules.shown(last)}: keeps no checkpoint")
    rules.text(f"{prefix}.filename", values.get("filename"), optional=True)
    for key in ("every_n_epochs", "every_n_train_steps"):
        if values.get(key) is not None:
            rules.whole(f"{prefix}.{key}", values[key], lo=0)
    for key in ("auto_insert_metric_name", "save_weights_only", "verbose"):
        rules.flag(f"{prefix}.{key}", values.get(key, key == "auto_insert_metric_name"))


def _lr_monitor(values: dict, prefix: str) -> None:
    rules.choice(f"{prefix}.logging_interval", values.get("logging_interval"), ("step", "epoch", None))


LIGHTNING_RULES: dict[str, Callable[[dict, str], None]] = {
    "ModelCheckpoint": _model_checkpoint,
    "LearningRateMonitor": _lr_monitor,
}
