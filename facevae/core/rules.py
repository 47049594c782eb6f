"""Rules for configuration values: each checks one setting and raises FaceVAEError naming it, before any work.

A class built from a config group (the datamodule, each model, each callback) declares its own rules as a static
`check_settings(values, prefix)`; its constructor runs them, and `facevae.validation.check_config` runs them for every
group of a command before data is extracted, a logger made or a directory written. The rules below are the vocabulary
they share, so that `data.loader.batch_size=0`, `data.loader.batch_size=1.5`, `data.loader.batch_size=nan` and
`data.loader.batch_size=abc` each get one line saying what the setting must be.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from facevae.core.errors import FaceVAEError, require


@runtime_checkable
class Configurable(Protocol):
    """A class built from a config group that declares the rules of its values (a static or class method)."""

    def check_settings(self, values: dict, prefix: str) -> None: ...


def shown(value: Any) -> str:
    """A value as the user would type it: '' for an empty string, null for None, true/false for booleans."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value if value.strip() else repr(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(shown(v) for v in value) + "]"
    return str(value)


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _bounds(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"from {_num(lo)} to {_num(hi)}"
    return f">= {_num(lo)}" if lo is not None else f"<= {_num(hi)}"


def whole(key: str, value: Any, lo: int | None = None, hi: int | None = None, why: str = "") -> int:
    """An integer (not a boolean, not 1.5) within [lo, hi]."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    span = "" if lo is None and hi is None else " " + _bounds(lo, hi)
    require(ok, f"{key}={shown(value)}: must be a whole number{span}{why}")
    require((lo is None or value >= lo) and (hi is None or value <= hi), f"{key}={value}: must be{span}{why}")
    return value


def number(
    key: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    above: float | None = None,
    below: float | None = None,
    why: str = "",
) -> float:
    """A finite number within [lo, hi] and strictly inside (above, below)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    parts = [f"> {_num(above)}"] if above is not None else []
    parts += [_bounds(lo, hi)] if lo is not None or hi is not None else []
    parts += [f"< {_num(below)}"] if below is not None else []
    span = " " + " and ".join(parts) if parts else ""
    require(ok, f"{key}={shown(value)}: must be a finite number{span}{why}")
    inside = (lo is None or value >= lo) and (hi is None or value <= hi)
    inside = inside and (above is None or value > above) and (below is None or value < below)
    require(inside, f"{key}={shown(value)}: must be{span}{why}")
    return float(value)


def flag(key: str, value: Any) -> bool:
    """true or false, not a string that merely looks like one (`yes` would count as true)."""
    require(isinstance(value, bool), f"{key}={shown(value)}: must be true or false")
    return value


def choice(key: str, value: Any, options: Collection, why: str = "") -> Any:
    listed = ", ".join(shown(o) for o in options)
    ok = any(value == o and type(value) is type(o) for o in options)  # `true` is not the choice 1
    require(ok, f"{key}={shown(value)}: must be one of {listed}{why}")
    return value


def text(key: str, value: Any, optional: bool = False, why: str = "") -> str | None:
    """A non-empty string; None too when optional."""
    if value is None and optional:
        return None
    ok = isinstance(value, str) and value.strip() != ""
    require(ok, f"{key}={shown(value)}: must be {'null or ' if optional else ''}a non-empty text{why}")
    return value


def whole_list(key: str, value: Any, lo: int, hi: int, max_len: int) -> list[int]:
    ok = isinstance(value, Sequence) and not isinstance(value, str) and 1 <= len(value) <= max_len
    require(ok, f"{key}={shown(value)}: must be a list of 1 to {max_len} whole numbers")
    ok = all(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi for v in value)
    require(ok, f"{key}={shown(value)}: each must be a whole number from {lo} to {hi}")
    return list(value)


def number_list(key: str, value: Any, length: int, lo: float, below: float) -> list[float]:
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == length
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ok = ok and all(lo <= v < below for v in value)
    require(ok, f"{key}={shown(value)}: must be {length} numbers, each >= {lo:g} and < {below:g}")
    return [float(v) for v in value]


def with_defaults(fn: Callable, values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` over the defaults of fn's keyword arguments: what a constructor called with `values` would see."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    return {**defaults, **values}


def known_keys(prefix: str, values: Mapping[str, Any], fn: Callable, what: str) -> None:
    """Every key of values is an argument fn takes (unless fn takes **kwargs): a misspelt +key is named."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known_names(prefix, values, list(params), what)


def known_names(prefix: str, values: Mapping[str, Any], names: Sequence[str], what: str) -> None:
    """Every key of values is one of `names`: a misspelt +key is named, with the names it may have meant."""
    for key in values:
        if key not in names:
            close = [name for name in names if name.startswith(key[:3])][:3]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise FaceVAEError(f"{prefix}.{key}: not a setting of {what}{hint}")
