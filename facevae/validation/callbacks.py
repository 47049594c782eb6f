"""The `callbacks` group: each callback built by its rules, and a checkpoint that monitors a metric the model logs."""

from __future__ import annotations

from facevae.core import rules
from facevae.core.errors import require
from facevae.models.building import RebuiltFromCheckpoint
from facevae.validation.groups import built


def check_callbacks(callbacks: dict, model_class: type) -> None:
    require(isinstance(callbacks, dict), f"callbacks={rules.shown(callbacks)}: must be a group (callbacks=default)")
    for name, node in callbacks.items():
        if node is None:  # callbacks.samples=null leaves one out
            continue
        cls = built(f"callbacks.{name}", node)
        if cls.__name__ == "ModelCheckpoint":
            _monitor(f"callbacks.{name}", node, model_class)


def _monitor(prefix: str, node: dict, model_class: type) -> None:
    """A monitored key the model logs, in the direction that means better: else the "best" checkpoint is the worst,
    or Lightning stops after the first epoch for want of the key."""
    metrics = model_class.checkpoint_metrics if issubclass(model_class, RebuiltFromCheckpoint) else None
    monitor = node.get("monitor")
    if metrics is None or monitor is None:
        return
    require(monitor in metrics, f"{prefix}.monitor={monitor}: {model_class.__name__} logs {', '.join(metrics)}")
    mode = node.get("mode", "min")
    better = "higher" if metrics[monitor] == "max" else "lower"
    require(
        mode == metrics[monitor], f"{prefix}.mode={mode}: {monitor} is better {better}; use mode={metrics[monitor]}"
    )
