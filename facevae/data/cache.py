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
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facevae.errors import FaceVAEError

CACHE_FORMAT = 2  # 2: counts gained frames and skipped
_HEAD_TAIL_BYTES = 1 << 20


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


def file_identity(path: Path) -> str:
    """Size plus a hash of the first and last MiB: cheap on a 2 GB video, and changes when its content does."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(_HEAD_TAIL_BYTES))
        if size > _HEAD_TAIL_BYTES:
            f.seek(max(_HEAD_TAIL_BYTES, size - _HEAD_TAIL_BYTES))
            digest.update(f.read())
    return digest.hexdigest()


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


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary directory beside `final`; rename it to `final` only if the block finishes.

    On any error the temporary directory is removed, and so is the parent if this call created it, so bad input
    leaves nothing behind. A process killed midway leaves only a hidden `.tmp-*` directory, which no reader takes
    for a cache and a later build clears.
    """
    parent = final.parent
    created_parent = not parent.exists()
    parent.mkdir(parents=True, exist_ok=True)
    _clear_stale_temporaries(parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=parent))
    try:
        yield tmp
        try:
            os.replace(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            # Another process (a parallel sweep job) finished the same build first; the key makes them equal.
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created_parent and not any(parent.iterdir()):
            parent.rmdir()
        raise


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; it becomes `path` only if the block finishes, so a reader
    never sees half a file. The temporary is removed either way."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def build_lock(final: Path) -> Iterator[None]:
    """Let one process build `final` while others wait for it, instead of all extracting the same video at once.

    An advisory lock on a hidden file beside it, removed afterwards. Where locks are not available (no fcntl),
    builds may overlap, which costs time but not correctness: see atomic_directory.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    parent = final.parent
    created_parent = not parent.exists()
    parent.mkdir(parents=True, exist_ok=True)
    lock = parent / f".lock-{final.name}"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)
    if created_parent and not any(parent.iterdir()):  # bad input leaves no empty cache folder behind
        parent.rmdir()


def _clear_stale_temporaries(parent: Path, max_age_s: float = 3600) -> None:
    """Remove temporaries of builds that were killed: ones untouched for an hour (a live build writes often)."""
    for tmp in parent.glob(".tmp-*"):
        try:
            abandoned = time.time() - tmp.stat().st_mtime > max_age_s
        except OSError:
            continue
        if abandoned:
            shutil.rmtree(tmp, ignore_errors=True)


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
