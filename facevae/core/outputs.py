"""Output folders that a command replaces without ever touching what it did not write.

evaluate.py writes its files into a folder the user names (`output_dir=`), which may be new, empty, a previous
result of the same command, or by mistake a training run or a folder of the user's own. Each folder facevae writes
results into carries a manifest, `.facevae-outputs.json`: which command wrote it and the sha256 of every file it
wrote. So a later run recognises a previous result reliably, replaces exactly the files listed (and none the user
added beside them, such as W&B's `wandb/`), and refuses, before any work, a folder holding anything else, or a
listed file the user has since changed.

The new files are made in a hidden staging folder inside the output folder (the same file system, so each move is
a rename) and moved in only when every one is complete; a failed or killed run leaves the previous result whole.
The manifest is written first listing the old files and the new, and last listing only the new, so at every
moment it names every file facevae put there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from facevae.core.errors import FaceVAEError
from facevae.core.files import (
    file_sha256,
    fsync_dir,
    fsync_file,
    missing_folders,
    process_running,
    remove_empty,
    write_text,
    writing,
)

MANIFEST = ".facevae-outputs.json"
STAGING = ".facevae-staging"
IGNORED = (MANIFEST, STAGING)  # names (and name prefixes) that are facevae's own bookkeeping
Hashes = str | list[str] | None  # a file's sha256 in the manifest; several while a replacement moves in; None: unknown


@dataclass(frozen=True)
class OutputKind:
    """What one command writes into an output folder, and how it is told to write elsewhere."""

    name: str  # "evaluation": said in messages and stored in the manifest
    command: str  # "evaluate.py"
    files: frozenset[str]  # every file name it may write
    setting: str = "output_dir"  # the override that points it at another folder
    shared: bool = False  # the folder holds other things by design (a sweep directory): only name clashes matter
    # Recognises a folder an earlier facevae wrote before manifests existed: its files among `files` are replaced.
    earlier: Callable[[Path], bool] | None = None


@contextmanager
def output_folder(path: Path | str, kind: OutputKind) -> Iterator[Path]:
    """Check that `path` may take `kind`'s files, then yield a staging folder to write them into; when the block
    finishes they replace the previous result's files in `path`. Meant to be entered before the work starts."""
    path = Path(path).expanduser()
    setting = kind.setting
    recorded = check_output_folder(path, kind)
    created = missing_folders(path)
    staging = path / f"{STAGING}@{socket.gethostname()}@{os.getpid()}@{time.time_ns()}"
    with writing(path, setting):
        staging.mkdir(parents=True)
    try:
        with writing(path, setting, staging):
            yield staging
        _commit(staging, path, kind, recorded)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        remove_empty(created)  # a failed first run leaves no empty folders behind


def check_output_folder(path: Path, kind: OutputKind) -> dict[str, Hashes]:
    """The files of `kind` that facevae recorded in `path` (name -> sha256, None when an earlier version wrote them
    unrecorded); a FaceVAEError when `path` cannot take this kind's files without losing anything of the user's."""
    where = (
        f"give {kind.setting}= a new or empty folder, or the folder of a previous {kind.name}, which {kind.command} "
        "replaces"
    )
    existing = next(folder for folder in [path, *path.parents] if folder.exists())
    if not existing.is_dir():
        raise FaceVAEError(f"{existing}: is a file, not a folder; {where}")
    if not path.is_dir():
        return {}
    _clear_stale_staging(path)
    recorded = read_manifest(path, kind, where)
    entries = sorted(p.name for p in path.iterdir() if not p.name.startswith(IGNORED))
    if recorded is None:
        earlier = kind.earlier is not None and kind.earlier(path)
        recorded = {name: None for name in entries if name in kind.files} if earlier else {}
        others = [name for name in entries if name not in recorded]
        if others and not kind.shared and not earlier:
            raise FaceVAEError(f"{path}: holds files {kind.command} did not write ({_listed(others)}); {where}")
    clashes = [name for name in entries if name in kind.files and name not in recorded]
    if clashes:
        raise FaceVAEError(
            f"{path}: holds files {kind.command} did not write but would replace ({_listed(clashes)}); {where}"
        )
    changed = [n for n, sha in recorded.items() if (path / n).exists() and not _same(path / n, sha)]
    if changed:
        raise FaceVAEError(
            f"{path / changed[0]}: changed since {kind.command} wrote it; move it elsewhere to keep it, "
            f"then run again ({kind.command} replaces only files it wrote)"
        )
    return recorded


def _same(file: Path, sha: Hashes) -> bool:
    """Whether `file` is still the file facevae wrote: its sha256, either of two while a replacement was moving in,
    or None when an earlier version wrote it unrecorded."""
    if not file.is_file():
        return False
    return sha is None or file_sha256(file) in ([sha] if isinstance(sha, str) else sha)


def read_manifest(path: Path, kind: OutputKind, where: str = "") -> dict[str, Hashes] | None:
    """name -> sha256 of the files the manifest in `path` lists, or None when there is no manifest."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        return None
    try:
        record = json.loads(manifest.read_text())
        files = {str(k): _hashes(v) for k, v in record["files"].items()}
        other = str(record["kind"])
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise FaceVAEError(f"{manifest}: not a readable record of the files facevae wrote here; {where}") from None
    if other != kind.name:
        raise FaceVAEError(f"{path}: holds {_a(other)}, not {_a(kind.name)}; {where}")
    return files


def _hashes(value: object) -> Hashes:
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value) if value else None


def _commit(staging: Path, path: Path, kind: OutputKind, recorded: dict[str, Hashes]) -> None:
    staged = sorted(p for p in staging.iterdir() if p.is_file())
    setting = kind.setting
    with writing(path, setting):
        check_output_folder(path, kind)  # nothing of the user's appeared while the work ran
        new = {}
        for file in staged:
            fsync_file(file)
            new[file.name] = file_sha256(file)
        # Until every file is moved, a listed name may hold the old file or the new one: both are facevae's.
        moving = {name: _either(recorded, name, new.get(name)) for name in {*recorded, *new}}
        _write_manifest(path, kind, moving, setting)
        for file in staged:
            os.replace(file, path / file.name)
        for name in set(recorded) - set(new):
            if (path / name).is_file():
                (path / name).unlink()
        _write_manifest(path, kind, new, setting)
        fsync_dir(path)


def _either(recorded: dict[str, Hashes], name: str, new: str | None) -> Hashes:
    if name in recorded and recorded[name] is None:
        return None  # written unrecorded by an earlier version: any content is its
    old = recorded.get(name)
    return [*([old] if isinstance(old, str) else old or []), *([new] if new else [])]


def _write_manifest(path: Path, kind: OutputKind, files: dict[str, Hashes], setting: str) -> None:
    record = {
        "kind": kind.name,
        "command": kind.command,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "note": f"{kind.command} replaces exactly these files when it writes here again, and nothing else",
        "files": dict(sorted(files.items())),
    }
    write_text(path / MANIFEST, json.dumps(record, indent=2) + "\n", setting)


def _clear_stale_staging(path: Path) -> None:
    """Staging folders of runs on this machine that were killed before they finished."""
    host = socket.gethostname()
    for staging in path.glob(f"{STAGING}@*"):
        parts = staging.name.split("@")
        if len(parts) == 4 and parts[1] == host and parts[2].isdigit() and not process_running(int(parts[2])):
            shutil.rmtree(staging, ignore_errors=True)


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _listed(names: list[str], shown: int = 4) -> str:
    more = f", ... {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
