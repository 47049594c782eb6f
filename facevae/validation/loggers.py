"""The `logger` group and W&B's mode: a mode W&B knows, and online only with a key to log in with."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pytorch_lightning.loggers import WandbLogger

from facevae.core import rules
from facevae.core.errors import require
from facevae.validation.groups import built
from facevae.validation.values import UNRESOLVED

WANDB_MODES = ("offline", "online", "disabled")


def check_loggers(loggers: dict) -> None:
    require(isinstance(loggers, dict), f"logger={rules.shown(loggers)}: must be a group of loggers (logger=csv, ...)")
    for name, node in loggers.items():
        if node is None:
            continue
        prefix = f"logger.{name}"
        cls = built(prefix, node)
        if node.get("save_dir") is not UNRESOLVED:
            rules.text(f"{prefix}.save_dir", node.get("save_dir", "."), optional=True)
        if issubclass(cls, WandbLogger):
            check_wandb_mode(node.get("mode", os.environ.get("WANDB_MODE", "offline")), f"{prefix}.mode")
            rules.text(f"{prefix}.project", node.get("project", "facevae"))
            for key in ("name", "group"):
                rules.text(f"{prefix}.{key}", node.get(key), optional=True)
            rules.choice(f"{prefix}.log_model", node.get("log_model", False), (True, False, "all"))
        else:
            rules.text(f"{prefix}.name", node.get("name", "lightning_logs"), optional=True)


def check_wandb_mode(mode: Any = None, key: str = "WANDB_MODE") -> None:
    """W&B's mode, from the config or the environment: one it knows, and online only with a key to log in with,
    since wandb would otherwise stop to ask for one (or hang without a network)."""
    env = os.environ.get("WANDB_MODE")
    if mode is None or mode == env:
        mode, key = env or "offline", "WANDB_MODE"
    rules.choice(key, mode, WANDB_MODES, why=" (offline keeps runs on disk to `wandb sync` later)")
    require(
        mode != "online" or _has_wandb_key(),
        f"{key}=online: no W&B API key here (set WANDB_API_KEY or run `wandb login`); to log offline and sync later, "
        "unset WANDB_MODE or set WANDB_MODE=offline",
    )


def _has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY", "").strip():
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        return path.is_file() and netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False
