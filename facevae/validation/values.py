"""The config as plain values, and the checks of paths every command shares.

`plain` turns a DictConfig into dicts and lists with each interpolation resolved, so that the rules see what the
command will see; `MISSING` marks a `???` nobody gave and `UNRESOLVED` a path Hydra fills in only when the job starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from facevae.core import rules
from facevae.core.checkpoint import checkpoint_in
from facevae.core.errors import FaceVAEError, require

MISSING = object()  # a mandatory value (`???`) nobody gave
UNRESOLVED = object()  # a path Hydra fills in when the job starts (`${hydra:runtime.output_dir}`)


def command_values(cfg: DictConfig) -> dict[str, Any]:
    """The top-level values a command reads, each resolved (Hydra's own settings left out)."""
    return {str(k): child(cfg, k, str(k)) for k in cfg.keys() if k != "hydra"}


def plain(node: Any, path: str = "") -> Any:
    """A DictConfig as dicts and lists with every interpolation resolved; a value that cannot be resolved is an
    error naming its key, except Hydra's own runtime paths (UNRESOLVED) and a missing `???` (MISSING)."""
    if isinstance(node, DictConfig):
        return {str(k): child(node, k, f"{path}{k}") for k in node.keys()}
    if isinstance(node, ListConfig):
        return [child(node, i, f"{path}[{i}]") for i in range(len(node))]
    return node


def child(node: DictConfig | ListConfig, key: Any, path: str) -> Any:
    """node[key] as plain values, `path` naming it in the error when it cannot be resolved."""
    try:
        return plain(node[key], f"{path}.")
    except MissingMandatoryValue:
        return MISSING
    except OmegaConfBaseException as err:
        raw = str(node._get_node(key)._value())
        if "hydra:" in raw or "HydraConfig" in str(err):  # outside a Hydra job (tests, the Python API)
            return UNRESOLVED
        reason = str(err).splitlines()[0]
        raise FaceVAEError(f"{path}={raw}: cannot be resolved ({reason})") from None


def data_pointer(data: dict) -> None:
    """evaluate.py's and the live view's `data.video` / `data.cache_dir`: where a checkpoint's data moved to."""
    if data.get("video") is not None:
        existing_path("data.video", data["video"])
    rules.text("data.cache_dir", data.get("cache_dir"), optional=True)


def existing_path(key: str, value: Any) -> Path:
    rules.text(key, value)
    path = Path(value).expanduser()
    require(path.exists(), f"{key}={value}: no such file or folder")
    return path


def existing_file(key: str, value: Any, what: str) -> Path:
    rules.text(key, value, why=f" (a {what})")
    path = Path(value).expanduser()
    if path.is_dir():
        hint = checkpoint_in(path) if what == "checkpoint" else ""
        raise FaceVAEError(f"{key}={value}: no such {what}, it is a folder{hint}")
    require(path.is_file(), f"{key}={value}: no such {what}")
    return path


def check_tags(tags: Any) -> None:
    ok = isinstance(tags, list) and all(isinstance(t, str | int | float) and 0 < len(str(t)) <= 64 for t in tags)
    require(ok, f"tags={rules.shown(tags)}: must be a list of short texts (1 to 64 characters each, as W&B requires)")
