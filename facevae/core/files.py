"""Files written so that a reader never sees half of one: a temporary beside the target, flushed, renamed into place.

`os.replace` is atomic only within one filesystem, so every temporary lives in the target's own folder; each one is
fsync'd before the rename (and the folder after it), so a full disk, a kill or a power cut leaves the previous file,
or nothing, under the final name. A write that fails for a reason the user can fix (a full disk, a read-only folder)
is a FaceVAEError naming the file, not a traceback.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from facevae.core.errors import FULL_ERRNOS, FaceVAEError, WriteError, disk_error, is_disk_error

_HEAD_TAIL_BYTES = 1 << 20
PARTIAL = ".partial"  # in the name of every temporary file: `.<name>.<host>-<pid>-<random>.partial<suffix>`


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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- errors and folders --------------------------------------------------------------------------------------------
@contextmanager
def writing(path: Path | str, setting: str = "", temporary: Path | None = None) -> Iterator[None]:
    """Turn a full disk or a read-only folder met inside the block into the one-line error for `path`.

    With `temporary` (a staging folder that stands for `path`, the block doing other work besides writing there),
    only errors of files inside it, or a full disk (whose errors name no file), are `path`'s; others pass, to be
    said in the words of the file they name.
    """
    try:
        yield
    except WriteError as err:
        if temporary is not None and not _inside(err.path, temporary):
            raise
        raise disk_error(path, err.os_error, setting) from None
    except OSError as err:
        if not is_disk_error(err):
            raise
        if temporary is not None and not (_inside(err.filename, temporary) or err.errno in FULL_ERRNOS):
            raise
        raise disk_error(path, err, setting) from None


def _inside(name: object, folder: Path) -> bool:
    return name is not None and Path(os.fsdecode(name) if isinstance(name, bytes) else str(name)).is_relative_to(folder)


def require_folder(path: Path, setting: str) -> None:
    """A folder to write into (or to make) must not be, or lie under, a file."""
    existing = next(folder for folder in [path, *path.parents] if folder.exists())
    if not existing.is_dir():
        what = "is a file" if existing == path else f"lies under a file ({existing})"
        raise FaceVAEError(f"{setting}={path}: {what}, not a folder; give {setting}= a folder")


def missing_folders(path: Path) -> list[Path]:
    """The folders `path` needs that do not exist yet, deepest first: what a failed write removes again."""
    missing = []
    for folder in [path, *path.parents]:
        if folder.exists():
            break
        missing.append(folder)
    return missing


def remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


# -- durability ----------------------------------------------------------------------------------------------------
def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable; file systems that cannot sync a folder are left as they are."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Every file under `root`, then every folder: before a temporary folder is renamed into place."""
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and not path.is_symlink():
            fsync_file(path)
    for path in [*sorted(p for p in Path(root).rglob("*") if p.is_dir()), Path(root)]:
        fsync_dir(path)


# -- single files --------------------------------------------------------------------------------------------------
def partial_path(path: Path) -> Path:
    """A temporary name beside `path`, hidden, marked as partial, keeping the suffix (np.save, savefig and
    cv2.imwrite pick the format from it), and naming its writer so a later write can clear it once that is gone."""
    token = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    return path.with_name(f".{path.name}.{token}{PARTIAL}{path.suffix}")


@contextmanager
def atomic_file(path: Path | str, setting: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; it becomes `path` only if the block finishes, flushed to disk,
    so a reader never sees half a file. The temporary is removed either way. A full disk or a read-only folder is a
    FaceVAEError naming `path` (and `setting`, the override that moves it elsewhere)."""
    path = Path(path)
    created = missing_folders(path.parent)
    with writing(path, setting):
        path.parent.mkdir(parents=True, exist_ok=True)
        _clear_stale_partials(path)
    tmp = partial_path(path)
    try:
        with writing(path, setting):
            yield tmp
            fsync_file(tmp)
            os.replace(tmp, path)
            fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        remove_empty(created)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path | str, data: bytes | memoryview, setting: str = "") -> Path:
    path = Path(path)
    with atomic_file(path, setting) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def write_text(path: Path | str, text: str, setting: str = "") -> Path:
    return write_bytes(path, text.encode("utf-8"), setting)


def save_torch(obj: object, path: Path | str, setting: str = "") -> Path:
    """torch.save through a buffer: torch's own file writer turns a full disk into a RuntimeError of its own
    wording, where a Python write raises the OSError that says what happened."""

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_bytes(path, buffer.getbuffer(), setting)


def write_npy(f: BinaryIO, array) -> None:
    """np.save into an open file, the data written by Python: numpy's own writer reports a full disk without its
    errno, which would then read as a bug rather than as the disk."""

    array = np.ascontiguousarray(array)
    np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(array))
    f.write(memoryview(array).cast("B"))


def copy_file(source: Path | str, path: Path | str, setting: str = "") -> Path:
    with atomic_file(path, setting) as tmp:
        shutil.copy2(source, tmp)
    return Path(path)


def _clear_stale_partials(path: Path) -> None:
    """Remove temporaries of `path` left by writers on this machine that are no longer running (a kill -9)."""
    host = socket.gethostname()
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*{PARTIAL}*"):
        parts = tmp.name[len(path.name) + 2 :].split(PARTIAL)[0].rsplit("-", 2)
        if len(parts) == 3 and parts[0] == host and parts[1].isdigit() and not process_running(int(parts[1])):
            tmp.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def process_running(pid: int) -> bool:
    """Whether a process of this id runs on this machine (one of another user's counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- folders -------------------------------------------------------------------------------------------------------
@contextmanager
def atomic_directory(final: Path, setting: str = "") -> Iterator[Path]:
    """Yield a temporary directory beside `final`; rename it to `final` only if the block finishes.

    On any error the temporary directory is removed, and so is the parent if this call created it, so bad input
    leaves nothing behind. A process killed midway leaves only a hidden `.tmp-*` directory, which no reader takes
    for a cache and a later build clears.
    """
    parent = final.parent
    created_parent = not parent.exists()
    with writing(parent, setting):
        parent.mkdir(parents=True, exist_ok=True)
        _clear_stale_temporaries(parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}@{socket.gethostname()}@{os.getpid()}@", dir=parent))
    try:
        with writing(final, setting, tmp):
            yield tmp
            fsync_tree(tmp)
            try:
                os.replace(tmp, final)
            except OSError:
                if not final.is_dir():
                    raise
                # Another process (a parallel sweep job) finished the same build first; the key makes them equal.
                shutil.rmtree(tmp, ignore_errors=True)
            fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created_parent and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
        raise


@contextmanager
def build_lock(final: Path, setting: str = "") -> Iterator[None]:
    """Let one process build `final` while others wait for it, instead of all extracting the same video at once.

    An advisory lock on a hidden file beside it, removed afterwards. Where locks are not available (no fcntl),
    builds may overlap, which costs time but not correctness: see atomic_directory.
    """
    try:
        import fcntl  # POSIX only: where it is missing (Windows), builds run unlocked
    except ImportError:
        yield
        return
    parent = final.parent
    created_parent = not parent.exists()
    lock = parent / f".lock-{final.name}"
    with writing(parent, setting):
        parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "w")  # noqa: SIM115 - held for the whole block, closed below
    try:
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                lock.unlink(missing_ok=True)
                fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        if created_parent and parent.is_dir() and not any(parent.iterdir()):  # a failure leaves no empty folder
            parent.rmdir()


def _clear_stale_temporaries(parent: Path, max_age_s: float = 3600) -> None:
    """Remove temporaries of builds that were killed: ones whose writer on this machine is gone, and ones untouched
    for an hour (a build on another machine of a shared disk writes often)."""
    host = socket.gethostname()
    for tmp in parent.glob(".tmp-*"):
        parts = tmp.name.rsplit("@", 3)
        gone = len(parts) == 4 and parts[1] == host and parts[2].isdigit() and not process_running(int(parts[2]))
        try:
            abandoned = gone or time.time() - tmp.stat().st_mtime > max_age_s
        except OSError:
            continue
        if abandoned:
            shutil.rmtree(tmp, ignore_errors=True)
