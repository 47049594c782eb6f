"""The project's one exception for bad input, and the CLI boundary that turns it into a one-line message."""

from __future__ import annotations

import errno
import functools
import logging
import sys
from collections.abc import Callable
from typing import TypeVar

from hydra.core.hydra_config import HydraConfig

T = TypeVar("T")

# Failures of the disk, its permissions or the path given, which the user fixes outside the program.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO})
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
PATH_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENOENT})


class FaceVAEError(Exception):
    """Bad input the user can act on. The message is one line: the file or setting, then the reason."""


def require(ok: bool, message: str) -> None:
    """Raise FaceVAEError(message) unless ok: a constructor's check of its config values."""
    if not ok:
        raise FaceVAEError(message)


def exit_on_error(fn: Callable[..., T]) -> Callable[..., T]:
    """Run fn; a FaceVAEError becomes `error: <message>` on stderr and exit status 2, no traceback. Ctrl-C ends it
    with `interrupted` and status 130, as a shell reports it: what was being written is still in temporaries,
    which the next run clears."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        notices_to_the_log()
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        except Exception as err:
            exit_if_user_error(err)
            raise

    return wrapper


def exit_if_user_error(err: BaseException) -> None:
    """For an error of the user's input (see `user_error`): its `error:` line on stderr and exit status 2. Any
    other error returns, for the caller to re-raise."""
    cause = user_error(err)
    if cause is not None:
        print(f"error: {cause}", file=sys.stderr)
        sys.exit(2)


def user_error(err: BaseException | None) -> FaceVAEError | None:
    """The FaceVAEError behind err, if any: Hydra's instantiate and Lightning wrap the exceptions they see. A full
    disk or a read-only folder met where no writer of ours named the file is one too, naming what the OS names."""
    chain, seen = [], set()
    while err is not None and id(err) not in seen:
        chain.append(err)
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    for cause in chain:
        if isinstance(cause, FaceVAEError):
            return cause
    for cause in chain:
        if is_disk_error(cause):
            return FaceVAEError(f"{cause.filename or 'a file'}: {_disk_reason(cause)}")
    return None


def is_disk_error(err: BaseException) -> bool:
    """A failure of the disk or of the path given, not of the program: said in one line, not as a traceback."""
    return isinstance(err, OSError) and err.errno in DISK_ERRNOS | PATH_ERRNOS


class WriteError(FaceVAEError):
    """A write that failed on a full disk or a read-only or forbidden folder: the file and the OS's error."""

    def __init__(self, message: str, path: object, os_error: OSError):
        super().__init__(message)
        self.path, self.os_error = path, os_error


def disk_error(path: object, err: OSError, setting: str = "") -> WriteError:
    """The one-line error for a write that failed on a full disk or a read-only or forbidden folder; `setting` is
    the override that points the write elsewhere (data.cache_dir, output_dir, hydra.run.dir)."""
    if err.errno in FULL_ERRNOS:
        where = f", or give {setting}= a folder on another disk" if setting else ""
    else:
        where = f"; give {setting}= a writable folder" if setting else ""
    return WriteError(f"{path}: cannot write it: {_disk_reason(err)}{where}", path, err)


def _disk_reason(err: OSError) -> str:
    if err.errno in FULL_ERRNOS:
        return "no space left on the device (nothing was left half-written); free some space and run again"
    if err.errno == errno.EROFS:
        return "the file system is read-only"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return err.strerror or str(err)


def notices_to_the_log() -> None:
    """In a command run by Hydra, Lightning's notices and Python's warnings go where Hydra's log goes (the console's
    stdout and the run's log file), so that stderr holds what went wrong and nothing else: an `error:` line."""

    if not HydraConfig.initialized():
        return
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        lightning = logging.getLogger(name)  # imported before Hydra set up logging, it added its own stderr handler
        for handler in list(lightning.handlers):
            lightning.removeHandler(handler)
        lightning.propagate = True
    logging.captureWarnings(True)
