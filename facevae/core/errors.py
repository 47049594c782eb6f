"""The project's one exception for bad input, and the CLI boundary that turns it into a one-line message."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class FaceVAEError(Exception):
    """Bad input the user can act on. The message is one line: the file or setting, then the reason."""


def require(ok: bool, message: str) -> None:
    """Raise FaceVAEError(message) unless ok: a constructor's check of its config values."""
    if not ok:
        raise FaceVAEError(message)


def exit_on_error(fn: Callable[..., T]) -> Callable[..., T]:
    """Run fn; a FaceVAEError becomes `error: <message>` on stderr and exit status 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        notices_to_the_log()
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            cause = user_error(err)
            if cause is None:
                raise
            print(f"error: {cause}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def user_error(err: BaseException | None) -> FaceVAEError | None:
    """The FaceVAEError behind err, if any: Hydra's instantiate and Lightning wrap the exceptions they see."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, FaceVAEError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def notices_to_the_log() -> None:
    """In a command run by Hydra, Lightning's notices and Python's warnings go where Hydra's log goes (the console's
    stdout and the run's log file), so that stderr holds what went wrong and nothing else: an `error:` line."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        lightning = logging.getLogger(name)  # imported before Hydra set up logging, it added its own stderr handler
        for handler in list(lightning.handlers):
            lightning.removeHandler(handler)
        lightning.propagate = True
    logging.captureWarnings(True)
