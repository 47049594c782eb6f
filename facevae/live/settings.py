"""The live group's settings (conf/live.yaml), each checked once before any work starts.

`validate` turns the composed config into a typed `LiveSettings` or raises a one-line `FaceVAEError` naming the
setting: no bad value reaches OpenCV (a negative camera index crashes inside it), PyAV or torch. Paths are checked
as far as they can be before the run (a folder where a file goes, a file that exists, a folder that cannot be
written in); the checkpoint and the video are read by their loaders, which say what is wrong with them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from facevae.core.errors import FaceVAEError
from facevae.data.h264 import SUFFIXES
from facevae.live.latent_map import PROJECTIONS
from facevae.live.sources import camera_index


@dataclass(frozen=True)
class LiveSettings:
    ckpt_path: Path
    source: int | Path  # a camera index or a video file
    output: Path | None = None  # the view as a video; None: in a window
    coords_csv: Path | None = None
    device: str = "auto"
    threads: int = 1
    projection: str = "auto"
    trail: int = 45
    max_frames: int | None = None
    snapshot_dir: Path = Path(".")
    overwrite: bool = False
    data: dict = field(default_factory=dict)  # where the training crops are, for fitting the latent map

    @property
    def camera(self) -> bool:
        return isinstance(self.source, int)


def validate(cfg: DictConfig) -> LiveSettings:
    """Every live setting checked; the first bad one raises `FaceVAEError("<setting>=<value>: <reason>")`."""
    try:
        ckpt = cfg.ckpt_path
    except MissingMandatoryValue:
        raise FaceVAEError("ckpt_path: missing (ckpt_path=PATH to a checkpoint written by train.py)") from None
    overwrite = _flag(cfg, "overwrite")
    source = _source(cfg.get("source"))
    output = _optional_path(cfg, "output")
    if output is not None:
        _check_output(output, "output", SUFFIXES, overwrite)
        _not_the_source(output, "output", source)
    coords = _optional_path(cfg, "coords_csv")
    if coords is None and output is not None:
        coords = output.with_name(f"{output.stem}.coords.csv")
    if coords is not None:
        _check_output(coords, "coords_csv", (".csv",), overwrite)
    snapshot_dir = Path(str(cfg.get("snapshot_dir") or ".")).expanduser()
    if output is None:
        _check_folder(snapshot_dir, "snapshot_dir")
    return LiveSettings(
        ckpt_path=Path(str(_required(ckpt, "ckpt_path"))).expanduser(),
        source=source,
        output=output,
        coords_csv=coords,
        device=_device(cfg.get("device", "auto")),
        threads=_whole(cfg, "threads", 1),
        projection=_choice(cfg, "projection", PROJECTIONS),
        trail=_whole(cfg, "trail", 1),
        max_frames=None if cfg.get("max_frames") is None else _whole(cfg, "max_frames", 1),
        snapshot_dir=snapshot_dir,
        overwrite=overwrite,
        data=_data(cfg),
    )


def _required(value, name: str):
    if value is None or (isinstance(value, str) and not value.strip()):
        raise FaceVAEError(f"{name}: missing ({name}=PATH)")
    return value


def _source(value) -> int | Path:
    value = _required(value, "source")
    index = camera_index(value)
    if index is not None:
        return index
    if not isinstance(value, str):
        raise FaceVAEError(f"source={value}: must be a camera index (0, 1, ...) or a video file")
    path = Path(value).expanduser()
    if path.is_dir():
        raise FaceVAEError(f"source={value}: is a folder; the live view plays a video file or a camera (source=0)")
    return path


def _optional_path(cfg: DictConfig, name: str) -> Path | None:
    value = cfg.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FaceVAEError(f"{name}={value}: must be a file name")
    return Path(value).expanduser()


def _check_output(path: Path, name: str, suffixes: tuple[str, ...], overwrite: bool) -> None:
    if path.is_dir():
        raise FaceVAEError(f"{name}={path}: is a folder; name a file in it, e.g. {path / ('live' + suffixes[0])}")
    if path.suffix.lower() not in suffixes:
        raise FaceVAEError(f"{name}={path}: must end in {', '.join(suffixes)}")
    if path.exists() and not overwrite:
        raise FaceVAEError(f"{name}={path}: exists (pass overwrite=true to replace it, or name another file)")
    _check_folder(path.parent, name, path)


def _not_the_source(path: Path, name: str, source: int | Path) -> None:
    """overwrite=true replaces an old output, never the video being read (which would be lost as it is read)."""
    if isinstance(source, Path) and path.exists() and source.exists() and os.path.samefile(path, source):
        raise FaceVAEError(f"{name}={path}: is the source video itself; name another file to write the view to")


def _check_folder(folder: Path, name: str, shown: Path | None = None) -> None:
    """The folder, or the nearest folder above it that exists (it will be created), must be writable."""
    shown = shown or folder
    if folder.exists() and not folder.is_dir():
        raise FaceVAEError(f"{name}={shown}: {folder} is a file, not a folder")
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise FaceVAEError(f"{name}={shown}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FaceVAEError(f"{name}={shown}: cannot write in {existing}")


def _flag(cfg: DictConfig, name: str) -> bool:
    value = cfg.get(name, False)
    if not isinstance(value, bool):
        raise FaceVAEError(f"{name}={value}: must be true or false")
    return value


def _whole(cfg: DictConfig, name: str, least: int) -> int:
    value = cfg.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise FaceVAEError(f"{name}={value}: must be a whole number, at least {least}")
    return value


def _choice(cfg: DictConfig, name: str, choices: tuple[str, ...]) -> str:
    value = cfg.get(name)
    if value not in choices:
        raise FaceVAEError(f"{name}={value}: must be one of {', '.join(choices)}")
    return value


def _device(name) -> str:
    """auto, cpu, or an accelerator this machine has (cuda, cuda:1, mps)."""
    if name == "auto":
        return name
    try:
        device = torch.device(str(name))
    except (RuntimeError, ValueError):
        raise FaceVAEError(f"device={name}: not a device (auto, cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
        raise FaceVAEError(f"device={name}: this machine has no such GPU (device=auto uses one when there is one)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise FaceVAEError(f"device={name}: MPS is not available here (device=auto or cpu)")
    if device.type not in ("cpu", "cuda", "mps"):
        raise FaceVAEError(f"device={name}: not a device the live view runs on (auto, cpu, cuda, mps)")
    return str(device)


def _data(cfg: DictConfig) -> dict:
    data = cfg.get("data")
    if data is None:
        return {}
    values = OmegaConf.to_container(data, resolve=True) if isinstance(data, DictConfig) else data
    if not isinstance(values, dict):
        raise FaceVAEError(f"data={data}: must be a group of settings (data.video=..., data.cache_dir=...)")
    for key, value in values.items():
        if value is not None and not isinstance(value, str):
            raise FaceVAEError(f"data.{key}={value}: must be a path")
    return values
