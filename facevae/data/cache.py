"""The crop cache: one directory per (source, extraction parameters), written atomically, memory-mappable.

    <cache_dir>/<stem>-<key>/
        crops.npy       N x size x size x 3 uint8 RGB
        frames.csv      frame, time_s, x, y, w, h (the crop's square in source pixels) [, file] [, factors...]
        manifest.json   source, key, parameters, counts, library versions, elapsed seconds

The key hashes the source's identity (its size and the bytes of its head and tail, not its path, so a renamed file
reuses its cache and an edited one does not), the factor sidecar's bytes and every extraction parameter. A cache is
built in a hidden temporary directory and renamed into place last: a directory with the final name is complete.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facevae.core.errors import FaceVAEError
from facevae.core.files import file_identity, write_npy

CACHE_FORMAT = 2  # 2: counts gained frames and skipped


@dataclass
class FaceCrops:
    """A loaded cache: the crops (memory-mapped), one row of frames.csv per crop, and the manifest."""

    path: Path
    crops: np.ndarray
    frames: pd.DataFrame
    manifest: dict

    @property
    def factor_names(self) -> list[str]:
        return list(self.manifest.get("factor_names", []))

    def factors(self) -> np.ndarray | None:
        """N x K float array of ground-truth factors, or None when the source had no sidecar."""
        names = self.factor_names
        return self.frames[names].to_numpy(np.float64) if names else None


def source_identity(source: Path, image_files: list[Path] | None = None) -> str:
    if image_files is None:
        return file_identity(source)
    digest = hashlib.sha256()
    for file in image_files:
        digest.update(file.name.encode())
        try:
            digest.update(file_identity(file).encode())
        except OSError as err:
            raise FaceVAEError(
                f"{file}: cannot read it ({err.strerror or err}); make it readable or move it out of the folder"
            ) from None
    return digest.hexdigest()


def cache_key(identity: str, sidecar: Path | None, params: dict) -> str:
    payload = {
        "format": CACHE_FORMAT,
        "source": identity,
        "sidecar": file_identity(sidecar) if sidecar else None,
        "params": params,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(cache_dir: Path, source: Path, key: str) -> Path:
    return Path(cache_dir) / f"{source.stem}-{key}"


CACHE_FILES = ("crops.npy", "frames.csv", "manifest.json")
FRAME_COLUMNS = ("frame", "time_s", "x", "y", "w", "h")


class DamagedCache(FaceVAEError):
    """A cache folder whose files are missing, unreadable or disagree: prepare_cache extracts it again."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(
            f"{path}: a damaged crop cache ({reason}); `python -m facevae.prepare` with the same data settings "
            "extracts it again"
        )


def write_cache(directory: Path, crops: np.ndarray, frames: pd.DataFrame, manifest: dict) -> None:
    """The three files, into a fresh folder that atomic_directory renames into place (and fsyncs) when complete."""
    with open(directory / "crops.npy", "wb") as f:
        write_npy(f, crops)
    frames.to_csv(directory / "frames.csv", index=False, float_format="%.6g")
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def load_cache(path: Path, mmap: bool = True) -> FaceCrops:
    """The cache at `path`, checked as it is opened: the manifest parses, crops.npy has the manifest's count, size
    and dtype, and frames.csv one row per crop with its columns. A DamagedCache otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DamagedCache(path, "a file, not a cache folder")
    if not path.is_dir():
        raise FaceVAEError(f"{path}: no crop cache there (`python -m facevae.prepare` extracts it)")
    missing = [name for name in CACHE_FILES if not (path / name).is_file()]
    if missing:
        raise DamagedCache(path, f"{', '.join(missing)} missing")
    manifest = _read_manifest(path)
    crops = _read_crops(path, manifest, mmap)
    frames = _read_frames(path, manifest, len(crops))
    return FaceCrops(path, crops, frames, manifest)


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        counts, params, names = manifest["counts"], manifest["params"], manifest.get("factor_names", [])
        valid = isinstance(manifest["key"], str) and path.name.endswith(manifest["key"])
        valid = valid and isinstance(counts["accepted"], int) and isinstance(params["size"], int)
        valid = valid and isinstance(names, list) and all(isinstance(n, str) for n in names)
    except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise DamagedCache(path, f"manifest.json unreadable: {type(err).__name__}") from None
    if not valid:
        raise DamagedCache(path, "manifest.json does not describe this cache")
    return manifest


def _read_crops(path: Path, manifest: dict, mmap: bool) -> np.ndarray:
    try:
        crops = np.load(path / "crops.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DamagedCache(path, f"crops.npy unreadable: {str(err).splitlines()[0][:80]}") from None
    size, count = manifest["params"]["size"], manifest["counts"]["accepted"]
    if crops.dtype != np.uint8 or crops.shape != (count, size, size, 3):
        shape = "x".join(map(str, crops.shape))
        raise DamagedCache(path, f"crops.npy holds {shape} {crops.dtype}, the manifest {count}x{size}x{size}x3 uint8")
    return crops


def _read_frames(path: Path, manifest: dict, count: int) -> pd.DataFrame:
    try:
        frames = pd.read_csv(path / "frames.csv")
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DamagedCache(path, f"frames.csv unreadable: {type(err).__name__}") from None
    needed = [*FRAME_COLUMNS, *manifest.get("factor_names", [])]
    missing = [c for c in needed if c not in frames.columns]
    if missing:
        raise DamagedCache(path, f"frames.csv lacks the columns {', '.join(missing)}")
    if len(frames) != count:
        raise DamagedCache(path, f"frames.csv has {len(frames)} rows for {count} crops")
    numeric = frames[needed].apply(pd.to_numeric, errors="coerce")
    if numeric.isna().any(axis=None):
        raise DamagedCache(path, "frames.csv has empty or non-numeric values")
    return frames
