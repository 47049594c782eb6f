"""One check of every config value a command reads, before it extracts data, makes a logger or writes a directory.

`check_config(cfg, command)` runs, for `train`, `prepare`, `evaluate` or `live`, the rules of every group the command
reads: the top-level values, `data`, `model`, `trainer`, `logger`, `callbacks`, and evaluate's and live's own. A
class built from a group (`_target_`) brings its own rules (`check_settings`, beside the values it uses); the rules
for Lightning's and W&B's objects, for the commands' own values, and those that tie groups together are here. The
first bad value ends the command with one line, `error: <setting>=<value>: <what it must be>`. `train.py` runs the
check from a Hydra callback too, before Hydra makes the run's directory, and for each value a sweep will try.

Besides values that would crash, the checks refuse runs that would "succeed" doing nothing of use: no epoch to
train, no validation to choose the best checkpoint by, no test blocks to test on, no checkpoint kept.
"""

from __future__ import annotations

import importlib
import logging
import math
import netrc
import os
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.experimental.callback import Callback
from lightning_fabric.connector import _PRECISION_INPUT_INT, _PRECISION_INPUT_STR
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException
from pytorch_lightning.loggers import WandbLogger

from facevae.core import rules
from facevae.core.checkpoint import checkpoint_in
from facevae.core.device import check_device
from facevae.core.errors import FaceVAEError, exit_if_user_error, require
from facevae.data import split
from facevae.data.extract import check_source
from facevae.data.video import probe_video
from facevae.live.settings import validate
from facevae.resume import check_resumable

log = logging.getLogger(__name__)

MISSING = object()  # a mandatory value (`???`) nobody gave
UNRESOLVED = object()  # a path Hydra fills in when the job starts (`${hydra:runtime.output_dir}`)
SEED_RANGE = (0, 2**32 - 1)  # what numpy's and Lightning's seeding accept
WANDB_MODES = ("offline", "online", "disabled")
MAX_SAMPLES = 50_000  # prior samples decoded at once by evaluate.py: 600 MB of 64x64 crops


def check_config(cfg: DictConfig, command: str) -> None:
    """Every value `command` reads from cfg, checked; the first bad one raises FaceVAEError naming it."""
    values = {str(k): _child(cfg, k, str(k)) for k in cfg.keys() if k != "hydra"}
    COMMANDS[command](values, cfg)


# -- the config as plain values -------------------------------------------------------------------------------------


def plain(node: Any, path: str = "") -> Any:
    """A DictConfig as dicts and lists with every interpolation resolved; a value that cannot be resolved is an
    error naming its key, except Hydra's own runtime paths (UNRESOLVED) and a missing `???` (MISSING)."""
    if isinstance(node, DictConfig):
        return {str(k): _child(node, k, f"{path}{k}") for k in node.keys()}
    if isinstance(node, ListConfig):
        return [_child(node, i, f"{path}[{i}]") for i in range(len(node))]
    return node


def _child(node: DictConfig | ListConfig, key: Any, path: str) -> Any:
    try:
        return plain(node[key], f"{path}.")
    except MissingMandatoryValue:
        return MISSING
    except OmegaConfBaseException as err:
        raw = str(node._get_node(key)._value())
        if "hydra:" in raw or "HydraConfig" in str(err):  # outside a Hydra job (tests, the Python API)
            return UNRESOLVED
        reason = str(err).splitlines()[0]
        raise FaceVAEError(f"{path}={raw}: cannot be resolved ({reason})") from None


# -- commands -------------------------------------------------------------------------------------------------------


def check_train(v: dict, cfg: DictConfig) -> None:
    rules.whole("seed", v.get("seed"), *SEED_RANGE)
    rules.flag("test", v.get("test", True))
    rules.text("optimized_metric", v.get("optimized_metric", "val/loss"))
    _tags(v.get("tags") or [])
    _built("data", v.get("data"))
    model_class = _built("model", v.get("model"))
    _same_size(v)
    _source(v["data"], train=True)
    _trainer(v.get("trainer") or {})
    _loggers(v.get("logger") or {})
    _callbacks(v.get("callbacks") or {}, model_class)
    _does_something(v)
    if v.get("ckpt_path") is not None:
        rules.text("ckpt_path", v["ckpt_path"], optional=True)
        check_resumable(v["ckpt_path"], cfg)


def check_prepare(v: dict, cfg: DictConfig) -> None:
    _built("data", v.get("data"))
    if v.get("model") is not None:  # the crops must fit the model that will train on them: the same rule as train's
        _built("model", v["model"])
        _same_size(v)
    _source(v["data"], train=False)


def check_evaluate(v: dict, cfg: DictConfig) -> None:
    given = [key for key in ("ckpt_path", "sweep_dir", "compare") if v.get(key) not in (None, "", [])]
    require(
        len(given) > 0,
        "nothing to evaluate: give ckpt_path=PATH, sweep_dir=DIR (a train.py -m sweep), or compare=[PATH,PATH] for a "
        "side-by-side table",
    )
    require(len(given) == 1, f"give one of ckpt_path=, sweep_dir= or compare=, not {' and '.join(given)} together")
    if v.get("ckpt_path") is not None:
        _file("ckpt_path", v["ckpt_path"], "checkpoint")
    if v.get("sweep_dir") is not None:
        rules.text("sweep_dir", v["sweep_dir"])
        require(Path(v["sweep_dir"]).expanduser().is_dir(), f"sweep_dir={v['sweep_dir']}: no such directory")
    if v.get("compare") is not None:
        paths = v["compare"] if isinstance(v["compare"], list) else [v["compare"]]
        for path in paths:
            _file("compare", path, "checkpoint")
    if v.get("smiles") is not None:
        _path("smiles", v["smiles"])
    if v.get("neutral") is not None:
        _path("neutral", v["neutral"])
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
    _data_pointer(v.get("data") or {})


def check_live(v: dict, cfg: DictConfig) -> None:
    require(v.get("ckpt_path") is not MISSING, "ckpt_path: required, a checkpoint written by train.py")
    _file("ckpt_path", v.get("ckpt_path"), "checkpoint")
    validate(cfg)  # the source, the projection, and the output paths: one that exists, a folder, not writable
    source = v.get("source")
    if isinstance(source, str) and not source.isdigit():
        _file("source", source, "video file")
    check_device("device", v.get("device"))
    cores = os.cpu_count() or 1
    rules.whole("threads", v.get("threads"), 1, cores, why=f" (this machine has {cores} CPU cores)")
    rules.whole("trail", v.get("trail"), 1, 10_000, why=" points")
    rules.text("snapshot_dir", v.get("snapshot_dir"))
    _data_pointer(v.get("data") or {})


COMMANDS: dict[str, Callable[[dict, DictConfig], None]] = {
    "train": check_train,
    "prepare": check_prepare,
    "evaluate": check_evaluate,
    "live": check_live,
}


# -- groups built from a _target_ -----------------------------------------------------------------------------------


def _built(prefix: str, node: Any) -> type:
    """A group that names a class: the class exists, takes every key given, and its own rules pass."""
    require(isinstance(node, dict) and "_target_" in node, f"{prefix}: must name a class (_target_) to build")
    cls = _target_class(prefix, node["_target_"])
    values = {k: v for k, v in node.items() if not k.startswith("_")}
    rules.known_keys(prefix, values, cls.__init__, cls.__name__)
    for key, child in values.items():  # the objects it is given built (a network, an optimizer): each by its rules
        if isinstance(child, dict) and "_target_" in child:
            _built(f"{prefix}.{key}", child)
    check = getattr(cls, "check_settings", None) or LIGHTNING_RULES.get(cls.__name__)
    if check is not None:
        check({k: v for k, v in values.items() if v is not UNRESOLVED}, prefix)
    return cls


def _target_class(prefix: str, target: Any) -> type:
    rules.text(f"{prefix}._target_", target)
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        cls = None
    require(isinstance(cls, type), f"{prefix}._target_={target}: no such class")
    return cls


def _same_size(v: dict) -> None:
    """Each network the model is given takes the crops' size."""
    size = v["data"].get("size")
    networks = {key: node for key, node in v["model"].items() if isinstance(node, dict) and "image_size" in node}
    for key, node in networks.items():
        image_size = node["image_size"]
        require(
            image_size is UNRESOLVED or image_size == size,
            f"model.{key}.image_size={image_size}, data.size={size}: the model must take the crops' size "
            f"(leave model.{key}.image_size at ${{data.size}})",
        )


def _source(data: dict, train: bool) -> None:
    """The video exists and is readable, and is long enough for the split, before minutes go into extraction."""
    if data.get("video"):
        check_source(Path(data["video"]).expanduser())
    if not train:
        return
    video = Path(data["video"] or data["demo_video"]).expanduser()
    if video.is_file():
        seconds = probe_video(video).duration_s
    elif not data.get("video"):
        seconds = data["demo_seconds"]  # the demo is made at this length
    else:
        return  # a photo folder has no time to split by
    if seconds == seconds:  # NaN: the container does not say
        # The split of every frame kept at data.fps: what extraction gives when it finds the face in each.
        fractions = data["val_fraction"], data["test_fraction"]
        times = np.arange(0.0, seconds, 1.0 / data["fps"])
        block_s, gap_s = split.block_and_gap(times, data["block_s"], data["gap_s"], *fractions)
        split.held_out_blocks(math.ceil(seconds / block_s), block_s, *fractions, f"{seconds:g} s in ")
        labels = split.time_block_split(times, block_s, gap_s, *fractions, data["split_seed"])
        split.require_training_frames(labels, gap_s)


def _data_pointer(data: dict) -> None:
    """evaluate.py's and the live view's `data.video` / `data.cache_dir`: where a checkpoint's data moved to."""
    if data.get("video") is not None:
        _path("data.video", data["video"])
    rules.text("data.cache_dir", data.get("cache_dir"), optional=True)


def _path(key: str, value: Any) -> Path:
    rules.text(key, value)
    path = Path(value).expanduser()
    require(path.exists(), f"{key}={value}: no such file or folder")
    return path


def _file(key: str, value: Any, what: str) -> Path:
    rules.text(key, value, why=f" (a {what})")
    path = Path(value).expanduser()
    if path.is_dir():
        hint = checkpoint_in(path) if what == "checkpoint" else ""
        raise FaceVAEError(f"{key}={value}: no such {what}, it is a folder{hint}")
    require(path.is_file(), f"{key}={value}: no such {what}")
    return path


def _tags(tags: Any) -> None:
    ok = isinstance(tags, list) and all(isinstance(t, str | int | float) and 0 < len(str(t)) <= 64 for t in tags)
    require(ok, f"tags={rules.shown(tags)}: must be a list of short texts (1 to 64 characters each, as W&B requires)")


# -- trainer --------------------------------------------------------------------------------------------------------


def _trainer(t: dict) -> None:
    _target_class("trainer", t.get("_target_", "pytorch_lightning.Trainer"))
    values = {k: v for k, v in t.items() if not k.startswith("_")}
    rules.known_keys("trainer", values, pl.Trainer.__init__, "pytorch_lightning.Trainer")
    t = rules.with_defaults(pl.Trainer.__init__, values)
    _hardware(t)
    _schedule(t)
    _switches(t)


def _schedule(t: dict) -> None:
    """How long the run trains, and how often it validates, logs and checks."""
    epochs = rules.whole("trainer.max_epochs", t["max_epochs"], lo=1, why=" (epochs to train)")
    if t["min_epochs"] is not None:
        rules.whole("trainer.min_epochs", t["min_epochs"], 0, epochs, why=" (trainer.max_epochs)")
    require(
        t["max_steps"] == -1 or (_is_whole(t["max_steps"]) and t["max_steps"] >= 1),
        f"trainer.max_steps={rules.shown(t['max_steps'])}: must be -1 (no limit) or a whole number >= 1",
    )
    if t["check_val_every_n_epoch"] is not None:  # the last epoch validates too (facevae.callbacks.ValidateLastEpoch)
        rules.whole("trainer.check_val_every_n_epoch", t["check_val_every_n_epoch"], lo=1)
    if t["val_check_interval"] is not None:
        # A share of each epoch: a number of steps could exceed an epoch's, which Lightning finds out only once the
        # data is extracted (the demo's epoch is about 15 steps).
        rules.number("trainer.val_check_interval", t["val_check_interval"], above=0, hi=1, why=" (a share of an epoch)")
    max_time = t["max_time"]
    ok = max_time is None or isinstance(max_time, dict) or (isinstance(max_time, str) and _is_duration(max_time))
    require(ok, f"trainer.max_time={rules.shown(max_time)}: must be null or DD:HH:MM:SS, e.g. 00:12:00:00")
    rules.whole("trainer.log_every_n_steps", t["log_every_n_steps"] if t["log_every_n_steps"] is not None else 50, lo=1)
    rules.number("trainer.limit_train_batches", _or(t["limit_train_batches"], 1.0), above=0, why=" (0 trains nothing)")
    for key in ("limit_val_batches", "limit_test_batches", "overfit_batches"):
        rules.number(f"trainer.{key}", _or(t[key], 1.0 if key != "overfit_batches" else 0.0), lo=0)
    rules.whole("trainer.num_sanity_val_steps", _or(t["num_sanity_val_steps"], 2), lo=-1)


def _switches(t: dict) -> None:
    """The Trainer's switches: those the models cannot take, and those that would keep nothing of the run."""
    rules.whole("trainer.reload_dataloaders_every_n_epochs", t["reload_dataloaders_every_n_epochs"], lo=0)
    # The models step their optimisers themselves (manual optimisation), which Lightning's accumulation and clipping
    # do not support.
    rules.choice("trainer.accumulate_grad_batches", t["accumulate_grad_batches"], (1,), why=" (manual optimisation)")
    require(t["gradient_clip_val"] is None, "trainer.gradient_clip_val: not supported with manual optimisation; null")
    rules.choice("trainer.deterministic", t["deterministic"], (True, False, "warn", None))
    for key in ("enable_progress_bar", "enable_model_summary", "use_distributed_sampler", "sync_batchnorm"):
        rules.flag(f"trainer.{key}", _or(t[key], True))
    for key in ("inference_mode", "detect_anomaly", "barebones"):
        rules.flag(f"trainer.{key}", t[key])
    require(
        _or(t["enable_checkpointing"], True) is True,
        "trainer.enable_checkpointing=false: the run would keep no checkpoint to evaluate or resume from",
    )
    require(t["barebones"] is False, "trainer.barebones=true: the run would keep no checkpoint and log nothing")
    fast = t["fast_dev_run"]
    require(
        isinstance(fast, bool) or (_is_whole(fast) and fast >= 0),
        f"trainer.fast_dev_run={rules.shown(fast)}: must be true, false or a number of batches",
    )
    if t["default_root_dir"] is not UNRESOLVED:
        rules.text("trainer.default_root_dir", t["default_root_dir"], optional=True)
    if isinstance(t["profiler"], dict):  # a profiler built from its own config (the bench's)
        _target_class("trainer.profiler", t["profiler"].get("_target_"))
    else:
        rules.choice("trainer.profiler", t["profiler"], (None, "simple", "advanced", "pytorch"))


def _hardware(t: dict) -> None:
    accelerator = rules.choice("trainer.accelerator", t["accelerator"], ("auto", "cpu", "gpu", "cuda", "mps"))
    gpus = torch.cuda.device_count()
    if accelerator in ("gpu", "cuda"):
        require(gpus > 0, f"trainer.accelerator={accelerator}: no CUDA GPU here; use trainer.accelerator=auto or cpu")
    if accelerator == "mps":
        require(torch.backends.mps.is_available(), "trainer.accelerator=mps: no Apple GPU here; use auto or cpu")
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus > 0)
    cores = os.cpu_count() or 1
    have = gpus if on_gpu else max(2, cores)  # DDP on CPU: a process a core, two even on one
    what = f"{gpus} GPUs" if on_gpu else f"{cores} CPU cores"
    devices = t["devices"]
    if devices != "auto":
        listed = devices if isinstance(devices, list) else None
        if listed is not None:
            ok = listed and all(_is_whole(d) and 0 <= d < have for d in listed)
            require(ok, f"trainer.devices={rules.shown(devices)}: device indices from 0 to {have - 1} ({what} here)")
        elif devices != -1:
            rules.whole("trainer.devices", devices, 1, have, why=f" (or auto; {what} here)")
    rules.whole("trainer.num_nodes", t["num_nodes"], lo=1)
    strategy = rules.text("trainer.strategy", t["strategy"])
    ok = strategy == "auto" or strategy.startswith(("ddp", "fsdp")) or strategy == "single_device"
    require(ok, f"trainer.strategy={strategy}: must be auto, ddp, ddp_spawn, fsdp or single_device")
    precisions = (*typing.get_args(_PRECISION_INPUT_STR), *typing.get_args(_PRECISION_INPUT_INT))
    rules.choice("trainer.precision", t["precision"] if t["precision"] is not None else "32-true", precisions)


def _is_duration(text: str) -> bool:
    parts = text.split(":")
    return len(parts) == 4 and all(p.isdigit() for p in parts) and any(int(p) for p in parts)


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- loggers and W&B ------------------------------------------------------------------------------------------------


def _loggers(loggers: dict) -> None:
    require(isinstance(loggers, dict), f"logger={rules.shown(loggers)}: must be a group of loggers (logger=csv, ...)")
    for name, node in loggers.items():
        if node is None:
            continue
        prefix = f"logger.{name}"
        cls = _built(prefix, node)
        if node.get("save_dir") is not UNRESOLVED:
            rules.text(f"{prefix}.save_dir", node.get("save_dir", "."), optional=True)
        if issubclass(cls, WandbLogger):
            check_wandb_mode(node.get("mode", os.environ.get("WANDB_MODE", "offline")), f"{prefix}.mode")
            rules.text(f"{prefix}.project", node.get("project", "facevae"))
            for key in ("name", "group"):
                rules.text(f"{prefix}.{key}", node.get(key), optional=True)
            rules.choice(f"{prefix}.log_model", node.get("log_model", False), (True, False, "all"))
        else:
            rules.text(f"{prefix}.name", node.get("name", "lightning_logs"), optional=True)


def check_wandb_mode(mode: Any = None, key: str = "WANDB_MODE") -> None:
    """W&B's mode, from the config or the environment: one it knows, and online only with a key to log in with,
    since wandb would otherwise stop to ask for one (or hang without a network)."""
    env = os.environ.get("WANDB_MODE")
    if mode is None or mode == env:
        mode, key = env or "offline", "WANDB_MODE"
    rules.choice(key, mode, WANDB_MODES, why=" (offline keeps runs on disk to `wandb sync` later)")
    require(
        mode != "online" or _has_wandb_key(),
        f"{key}=online: no W&B API key here (set WANDB_API_KEY or run `wandb login`); to log offline and sync later, "
        "unset WANDB_MODE or set WANDB_MODE=offline",
    )


def _has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY", "").strip():
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        return path.is_file() and netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


# -- callbacks ------------------------------------------------------------------------------------------------------


def _callbacks(callbacks: dict, model_class: type) -> None:
    require(isinstance(callbacks, dict), f"callbacks={rules.shown(callbacks)}: must be a group (callbacks=default)")
    for name, node in callbacks.items():
        if node is None:  # callbacks.samples=null leaves one out
            continue
        cls = _built(f"callbacks.{name}", node)
        if cls.__name__ == "ModelCheckpoint":
            _monitor(f"callbacks.{name}", node, model_class)


def _model_checkpoint(values: dict, prefix: str) -> None:
    rules.text(f"{prefix}.monitor", values.get("monitor"), optional=True)
    rules.choice(f"{prefix}.mode", values.get("mode", "min"), ("min", "max"))
    top_k = rules.whole(f"{prefix}.save_top_k", values.get("save_top_k", 1), lo=-1, why=" (-1 keeps every one)")
    last = rules.choice(f"{prefix}.save_last", values.get("save_last"), (True, False, None, "link"))
    require(top_k != 0 or last, f"{prefix}.save_top_k=0 with save_last={rules.shown(last)}: keeps no checkpoint")
    rules.text(f"{prefix}.filename", values.get("filename"), optional=True)
    for key in ("every_n_epochs", "every_n_train_steps"):
        if values.get(key) is not None:
            rules.whole(f"{prefix}.{key}", values[key], lo=0)
    for key in ("auto_insert_metric_name", "save_weights_only", "verbose"):
        rules.flag(f"{prefix}.{key}", values.get(key, key == "auto_insert_metric_name"))


def _monitor(prefix: str, node: dict, model_class: type) -> None:
    """A monitored key the model logs, in the direction that means better: else the "best" checkpoint is the worst,
    or Lightning stops after the first epoch for want of the key."""
    metrics = getattr(model_class, "checkpoint_metrics", None)
    monitor = node.get("monitor")
    if metrics is None or monitor is None:
        return
    require(monitor in metrics, f"{prefix}.monitor={monitor}: {model_class.__name__} logs {', '.join(metrics)}")
    mode = node.get("mode", "min")
    better = "higher" if metrics[monitor] == "max" else "lower"
    require(
        mode == metrics[monitor], f"{prefix}.mode={mode}: {monitor} is better {better}; use mode={metrics[monitor]}"
    )


def _lr_monitor(values: dict, prefix: str) -> None:
    rules.choice(f"{prefix}.logging_interval", values.get("logging_interval"), ("step", "epoch", None))


LIGHTNING_RULES: dict[str, Callable[[dict, str], None]] = {
    "ModelCheckpoint": _model_checkpoint,
    "LearningRateMonitor": _lr_monitor,
}


# -- runs that would do nothing of use ------------------------------------------------------------------------------


def _does_something(v: dict) -> None:
    data, trainer = v["data"], v.get("trainer") or {}
    checkpoint = next((c for c in (v.get("callbacks") or {}).values() if _is_checkpoint(c)), None)
    monitored = checkpoint is not None and checkpoint.get("monitor") is not None
    if data["val_fraction"] == 0:
        require(
            trainer.get("limit_val_batches") == 0 and not monitored,
            "data.val_fraction=0: no validation blocks, so no val/ metrics and no best checkpoint; hold some out, or "
            "train without validation on purpose with trainer.limit_val_batches=0 "
            "callbacks.model_checkpoint.monitor=null",
        )
    require(
        data["test_fraction"] > 0 or not v.get("test", True),
        "data.test_fraction=0: no test blocks to test the best checkpoint on; hold some out, or set test=false",
    )


def _is_checkpoint(node: Any) -> bool:
    return isinstance(node, dict) and str(node.get("_target_", "")).endswith("ModelCheckpoint")


# -- sweeps ---------------------------------------------------------------------------------------------------------


def sweep_values(cfg: DictConfig) -> dict[str, list]:
    """Each key a multirun sweeps, with the values (or an interval's ends) it will try: from the command line
    (`model.beta=1,2,4`) and from the sweeper's params (a sweep= preset, Optuna's search space)."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    texts = [f"{k}={v}" for k, v in params.items()]
    texts += list(cfg.hydra.overrides.task)  # last: the command line's values replace a preset's, as in Hydra
    tried: dict[str, list] = {}
    for override in OverridesParser.create().parse_overrides(texts):
        if not override.is_sweep_override() or override.key_or_group.startswith("hydra."):
            continue
        value = override.value()
        if isinstance(value, ChoiceSweep):
            tried[override.key_or_group] = list(value.list)
        elif isinstance(value, RangeSweep):
            tried[override.key_or_group] = list(override.sweep_iterator())
        elif isinstance(value, IntervalSweep):
            tried[override.key_or_group] = [value.start, value.end]
    return tried


def check_sweep(cfg: DictConfig, command: str) -> None:
    """The config with each value a sweep will try, one key at a time: a bad value is refused before any job runs."""
    for key, values in sweep_values(cfg).items():
        if isinstance(OmegaConf.select(cfg, key, default=None), DictConfig):
            continue  # a config group swept by choice (model=beta_vae,wgan_gp): each job checks its own
        for value in values:
            trial = cfg.copy()
            OmegaConf.update(trial, key, value, force_add=True)
            try:
                check_config(trial, command)
            except FaceVAEError as err:
                raise FaceVAEError(f"the sweep's {key}={value}: {err}") from None


class ConfigCheck(Callback):
    """Hydra callback: the config (and every value a sweep will try) checked before Hydra makes any directory."""

    def __init__(self, command: str = "train") -> None:
        self.command = command

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir", lambda cfg: check_config(cfg, self.command))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        def both(cfg: DictConfig) -> None:
            check_config(cfg, self.command)
            check_sweep(cfg, self.command)

        self._check(config, "hydra.sweep.dir", both)

    @staticmethod
    def _check(config: DictConfig, run_dir: str, check: Callable[[DictConfig], None]) -> None:
        """check(config) as the job will see it, with the run directory it will get (Hydra sets it only when it
        makes it); a FaceVAEError ends the command with its line, as the entry points' own errors do."""
        job = config.copy()
        with open_dict(job):
            job.hydra.runtime.output_dir = str(Path(OmegaConf.select(job, run_dir)).absolute())
        HydraConfig.instance().set_config(job)
        try:
            check(job)
        except Exception as err:
            exit_if_user_error(err)
            raise
