"""The live group's settings (conf/live.yaml), each checked once before any work starts.

`check_live` is the live command's one check: the values every command checks the same way (the checkpoint and
video exist, `data.video` / `data.cache_dir`), with the rules of `facevae.validation`, then `validate`, which turns
the live group into a typed `LiveSettings`. Either raises a one-line `FaceVAEError` naming the setting: no bad value
reaches OpenCV (a negative camera index crashes inside it), PyAV or torch. Paths are checked as far as they can be
before the run (a folder where a file goes, a file that exists, a folder that cannot be written in); the checkpoint
and the video are read by their loaders, which say what is wrong with them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from facevae.core import rules
from facevae.core.device import check_device
from facevae.core.errors import FaceVAEError, require
from facevae.data.h264 import SUFFIXES
from facevae.live.latent_map import PROJECTIONS
from facevae.live.sources import camera_index
from facevae.validation.values import MISSING, command_values, data_pointer, existing_file


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


def check_live(cfg: DictConfig) -> LiveSettings:
    """Every value the live view reads, checked before a camera opens; the first bad one raises FaceVAEError."""
    v = command_values(cfg)
    require(v.get("ckpt_path") is not MISSING, "ckpt_path: required, a checkpoint written by train.py")
    existing_file("ckpt_path", v.get("ckpt_path"), "checkpoint")
    settings = validate(cfg)  # the source, the projection, the output paths: one that exists, a folder, not writable
    source = v.get("source")
    if isinstance(source, str) and not source.isdigit():
        existing_file("source", source, "video file")
    rules.text("snapshot_dir", v.get("snapshot_dir"))
    data_pointer(v.get("data") or {})
    return settings


def validate(cfg: DictConfig) -> LiveSettings:
    """Every live setting checked; the first bad one raises `FaceVAEError("<setting>=<value>: <reason>")`."""
    try:
        ckpt = cfg.ckpt_path
    except MissingMandatoryValue:
        raise FaceVAEError("ckpt_path: missing (ckpt_path=PATH to a checkpoint written by train.py)") from None
    overwrite = rules.flag("overwrite", cfg.get("overwrite", False))
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
    cores = os.cpu_count() or 1
    return LiveSettings(
        ckpt_path=Path(str(_required(ckpt, "ckpt_path"))).expanduser(),
        source=source,
        output=output,
        coords_csv=coords,
        device=_device(cfg.get("device", "auto")),
        threads=rules.whole("threads", cfg.get("threads"), 1, cores, why=f" (this machine has {cores} CPU cores)"),
        projection=rules.choice("projection", cfg.get("projection"), PROJECTIONS),
        trail=rules.whole("trail", cfg.get("trail"), 1, 10_000, why=" points"),
        max_frames=None if cfg.get("max_frames") is None else rules.whole("max_frames", cfg.get("max_frames"), lo=1),
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


def _device(name: object) -> str:
    """auto, cpu, or an accelerator this machine has (cuda, cuda:1, mps)."""
    check_device("device", name)
    return str(name)


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
