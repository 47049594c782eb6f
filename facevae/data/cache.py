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
from facevae.core.files import file_identity

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
        digest.update(file_identity(file).encode())
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


def is_complete(path: Path) -> bool:
    return (path / "manifest.json").is_file() and (path / "crops.npy").is_file() and (path / "frames.csv").is_file()


def write_cache(directory: Path, crops: np.ndarray, frames: pd.DataFrame, manifest: dict) -> None:
    np.save(directory / "crops.npy", crops)
    frames.to_csv(directory / "frames.csv", index=False, float_format="%.6g")
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def load_cache(path: Path, mmap: bool = True) -> FaceCrops:
    path = Path(path)
    if not is_complete(path):
        raise FaceVAEError(f"{path}: not a complete face-crop cache (run `python -m facevae.prepare`)")
    crops = np.load(path / "crops.npy", mmap_mode="r" if mmap else None)
    frames = pd.read_csv(path / "frames.csv")
    manifest = json.loads((path / "manifest.json").read_text())
    return FaceCrops(path, crops, frames, manifest)
