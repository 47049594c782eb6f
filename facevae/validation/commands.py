"""What each command checks: train's, prepare's and evaluate's values and those that tie groups together."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from facevae.core import rules
from facevae.core.device import check_device
from facevae.core.errors import require
from facevae.data.datamodule import FaceCropDataModule
from facevae.resume import check_resumable
from facevae.validation.callbacks import check_callbacks
from facevae.validation.data import source_fits_split
from facevae.validation.groups import built, same_size
from facevae.validation.loggers import check_loggers, check_wandb_mode
from facevae.validation.trainer import check_trainer
from facevae.validation.values import check_tags, command_values, data_pointer, existing_file, existing_path

SEED_RANGE = (0, 2**32 - 1)  # what numpy's and Lightning's seeding accept
MAX_SAMPLES = 50_000  # prior samples decoded at once by evaluate.py: 600 MB of 64x64 crops


def check_config(cfg: DictConfig, command: str) -> None:
    """Every value `command` reads from cfg, checked; the first bad one raises FaceVAEError naming it."""
    COMMANDS[command](command_values(cfg), cfg)


def check_train(v: dict, cfg: DictConfig) -> None:
    rules.whole("seed", v.get("seed"), *SEED_RANGE)
    rules.flag("test", v.get("test", True))
    rules.text("optimized_metric", v.get("optimized_metric", "val/loss"))
    check_tags(v.get("tags") or [])
    built("data", v.get("data"))
    model_class = built("model", v.get("model"))
    same_size(v)
    source_fits_split(v["data"], train=True)
    check_trainer(v.get("trainer") or {})
    check_loggers(v.get("logger") or {})
    check_callbacks(v.get("callbacks") or {}, model_class)
    _does_something(v)
    if v.get("ckpt_path") is not None:
        rules.text("ckpt_path", v["ckpt_path"], optional=True)
        check_resumable(v["ckpt_path"], cfg)


def check_prepare(v: dict, cfg: DictConfig) -> None:
    built("data", v.get("data"))
    if v.get("model") is not None:  # the crops must fit the model that will train on them: the same rule as train's
        built("model", v["model"])
        same_size(v)
    source_fits_split(v["data"], train=False)


def check_evaluate(v: dict, cfg: DictConfig) -> None:
    given = [key for key in ("ckpt_path", "sweep_dir", "compare") if v.get(key) not in (None, "", [])]
    require(
        len(given) > 0,
        "nothing to evaluate: give ckpt_path=PATH, sweep_dir=DIR (a train.py -m sweep), or compare=[PATH,PATH] for a "
        "side-by-side table",
    )
    require(len(given) == 1, f"give one of ckpt_path=, sweep_dir= or compare=, not {' and '.join(given)} together")
    if v.get("ckpt_path") is not None:
        existing_file("ckpt_path", v["ckpt_path"], "checkpoint")
    if v.get("sweep_dir") is not None:
        rules.text("sweep_dir", v["sweep_dir"])
        require(Path(v["sweep_dir"]).expanduser().is_dir(), f"sweep_dir={v['sweep_dir']}: no such directory")
    if v.get("compare") is not None:
        paths = v["compare"] if isinstance(v["compare"], list) else [v["compare"]]
        for path in paths:
            existing_file("compare", path, "checkpoint")
    if v.get("smiles") is not None:
        existing_path("smiles", v["smiles"])
    if v.get("neutral") is not None:
        existing_path("neutral", v["neutral"])
        require(
            v.get("smiles") is not None,
            f"neutral={v['neutral']}: a neutral set is compared with a smiles set; give smiles=PATH too",
        )
    rules.text("output_dir", v.get("output_dir"), optional=True)
    check_device("device", v.get("device"))
    rules.whole("seed", v.get("seed"), *SEED_RANGE)
    if rules.flag("wandb", v.get("wandb")):
        check_wandb_mode()
    rules.whole("n_samples", v.get("n_samples"), 2, MAX_SAMPLES, why=" prior samples")
    # Smiles are the frames above the threshold, the others below 0.2: a threshold under 0.2 leaves frames in both.
    rules.number("smile_threshold", v.get("smile_threshold"), 0.2, below=1)
    rules.choice("smile_frames", v.get("smile_frames"), ("all", "heldout"))
    rules.number("smile_block_s", v.get("smile_block_s"), 1, 3600, why=" seconds")
    rules.whole("shift_frames", v.get("shift_frames"), lo=1)
    rules.whole("factor_bins", v.get("factor_bins"), 2, 1000)
    data_pointer(v.get("data") or {})


COMMANDS: dict[str, Callable[[dict, DictConfig], None]] = {
    "train": check_train,
    "prepare": check_prepare,
    "evaluate": check_evaluate,
}


def _does_something(v: dict) -> None:
    data, trainer = v["data"], v.get("trainer") or {}
    checkpoint = next((c for c in (v.get("callbacks") or {}).values() if _is_checkpoint(c)), None)
    monitored = checkpoint is not None and checkpoint.get("monitor") is not None
    split = FaceCropDataModule.grouped(data)["split"]
    if split["val_fraction"] == 0:
        require(
            trainer.get("limit_val_batches") == 0 and not monitored,
            "data.split.val_fraction=0: no validation blocks, so no val/ metrics and no best checkpoint; hold some "
            "out, or train without validation on purpose with trainer.limit_val_batches=0 "
            "callbacks.model_checkpoint.monitor=null",
        )
    require(
        split["test_fraction"] > 0 or not v.get("test", True),
        "data.split.test_fraction=0: no test blocks to test the best checkpoint on; hold some out, or set test=false",
    )


def _is_checkpoint(node: Any) -> bool:
    return isinstance(node, dict) and str(node.get("_target_", "")).endswith("ModelCheckpoint")
