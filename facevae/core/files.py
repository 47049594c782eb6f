"""Files written so that a reader never sees half of one: a temporary beside the target, renamed into place.

`os.replace` is atomic only within one filesystem, so every temporary lives in the target's own folder; a write
that fails (a full disk, a kill) leaves the previous file, or nothing, under the final name.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HEAD_TAIL_BYTES = 1 << 20


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


class replacing_directory:
    """Write into a temporary directory; on success it takes the place of `final` (an older result included)."""

    def __init__(self, final: Path):
        self.final = final
        self._inner = atomic_directory(final.with_name(final.name + ".new"))

    def __enter__(self) -> Path:
        return self._inner.__enter__()

    def __exit__(self, *exc) -> bool:
        done = self._inner.__exit__(*exc)
        if exc[0] is None:
            if self.final.exists():
                shutil.rmtree(self.final)
            os.replace(self.final.with_name(self.final.name + ".new"), self.final)
        return done
