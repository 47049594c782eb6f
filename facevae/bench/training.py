"""`python -m facevae.bench train`: training images/s four ways, and the seed experiment's fit time.

    (a) a bare eager step: crops already on the device, a random batch gathered there, forward, loss, backward, Adam
    (b) the same step compiled (torch.compile; on a GPU mode="reduce-overhead", i.e. torch's CUDA graphs); its
        one-time compilation reported apart. On a GPU also the step captured by CapturedStep (model.cuda_graph),
        eager and compiled inside
    (c) the full train.py loop as configured (W&B offline, every callback), its training batches and its whole fit,
        with the crops on the device (the default) and from host memory (data.loader.on_device=false); on a GPU also
        with the step captured eagerly and with reduce-overhead instead of the capture
    (d) the pipeline common VAE repositories use: a per-item Dataset over numpy and a shuffling DataLoader with workers

Each at every batch size asked for, after the seed experiment (experiment=seed_paper: batch 64, validation and
logging every epoch) trained for a few epochs on the data given: its one-time costs (compilation) apart, and its
fit time for 14,400 crops x 100 epochs extrapolated from the epochs after the first. The targets this checks:
on 2 CPU cores the full loop at >= 90% of (a); on one H100 the full loop >= 20,000 images/s at batch 64
and >= 150,000 at batch 1024, the seed experiment's fit under 75 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from torch.utils.data import DataLoader, Dataset

from facevae import training
from facevae.bench import data_overrides
from facevae.bench.machine import describe_machine
from facevae.core.config import CONF_DIR
from facevae.core.tensors import to_float_images
from facevae.data.datamodule import FaceCropDataModule
from facevae.models import BetaVAE, speed
from facevae.models.objectives import beta_vae_loss

log = logging.getLogger(__name__)

SEED_IMAGES = 14_400 * 100  # the seed experiment: 14,400 crops, 100 epochs


@dataclass
class Row:
    loop: str
    batch: int
    images_per_s: float
    note: str = ""


@dataclass
class FitTiming:
    """What a Clock saw of one train.py fit."""

    fit_s: float
    images: int
    train_ips: float  # training batches alone, in the fastest epoch after the first (load only slows epochs down)
    epoch_ips: float  # whole epochs (validation, grids, logging) after the first, all of them
    first_epoch_s: float
    later_epoch_s: float  # the mean of the epochs after the first
    largest_batch: int  # smaller than asked for when the training set is smaller than one batch
    profile: str | None = None  # Lightning's SimpleProfiler report, when asked for

    def note(self, batch: int) -> str:
        return "" if self.largest_batch >= batch else f"; the whole training set, {self.largest_batch}, per step"

    @property
    def one_time_s(self) -> float:
        """What the first epoch cost beyond a later one: compilation, CUDA graph capture, the cache's copy."""
        return max(0.0, self.first_epoch_s - self.later_epoch_s)


def bench_train(args: argparse.Namespace) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mode = args.compile_mode or ("reduce-overhead" if device.type == "cuda" else "default")
    crops = training_crops(args)
    print(f"\n{describe_machine(device.type)}; torch threads {torch.get_num_threads()}; {len(crops):,} crops")
    # The seed experiment first, then each row as soon as it is timed: a run cut short keeps what it measured.
    if args.fit_epochs > 0:
        fit = train_py_loop(64, args.fit_epochs, [*data_overrides(args), "experiment=seed_paper"], args.profile)
        print_seed_fit(fit, args.fit_epochs)
        if fit.profile:
            print_profile(fit)
    print("\n| loop | batch | images/s | |\n|---|---:|---:|---|", flush=True)
    for batch in args.batch_sizes:
        for r in rows_at(batch, crops, device, mode, args):
            print(f"| {r.loop} | {r.batch} | {r.images_per_s:,.0f} | {r.note} |", flush=True)


def rows_at(batch: int, crops: np.ndarray, device: torch.device, mode: str, args: argparse.Namespace) -> Iterator[Row]:
    """(a) to (d) at one batch size, each against (a)."""
    eager, _ = bare_loop(crops, batch, args.steps, device)
    yield Row("(a) bare eager step, crops on the device", batch, eager)

    def row(loop: str, images_per_s: float, extra: str = "") -> Row:
        return Row(loop, batch, images_per_s, f"{images_per_s / eager:.0%} of (a){extra}")

    compiled, compile_s = bare_loop(crops, batch, args.steps, device, mode)
    yield row(f"(b) bare compiled step, mode={mode}", compiled, f"; compiling {compile_s:.0f} s apart")
    if device.type == "cuda":
        captured, capture_s = bare_loop(crops, batch, args.steps, device, captured=True)
        yield row("(b) bare step captured as one CUDA graph (CapturedStep)", captured, f"; capture {capture_s:.1f} s")
        captured, capture_s = bare_loop(crops, batch, args.steps, device, "default", captured=True)
        yield row("(b) the same, compiled (mode=default) inside", captured, f"; compiling {capture_s:.0f} s apart")
    variants = [
        ("crops on the device", ["data.loader.on_device=true"]),
        ("crops from host memory", ["data.loader.on_device=false"]),
    ]
    if device.type == "cuda":
        variants.append(("the step captured eagerly (model.compile=false)", ["model.compile=false"]))
        variants.append(("model.compile=reduce-overhead, no CapturedStep", ["model.compile=reduce-overhead"]))
    for where, overrides in variants:
        fit = train_py_loop(batch, args.epochs, [*data_overrides(args), *overrides])
        yield row(f"(c) train.py, training batches, {where}", fit.train_ips, fit.note(batch))
        yield row(f"(c) train.py, whole epochs, {where}", fit.epoch_ips, f"; first epoch +{fit.one_time_s:.1f} s")
    workers = min(8, len(os.sched_getaffinity(0)))
    loader_ips = dataloader_loop(crops, batch, args.steps, device, workers)
    yield row(f"(d) DataLoader from numpy, {workers} workers", loader_ips)


def print_seed_fit(fit: FitTiming, epochs: int) -> None:
    """The fit as measured, and at its later epochs' rate the seed's 1.44 M images (the same when the data is a
    half-hour video and epochs is 100)."""
    estimate = fit.one_time_s + SEED_IMAGES / fit.epoch_ips
    print(
        f"\nSeed experiment (experiment=seed_paper: batch 64, validation and logging every epoch), {epochs} epochs "
        f"of {fit.images // epochs:,} training crops ({fit.images:,} images): fit {fit.fit_s:.1f} s, of which "
        f"one-time costs {fit.one_time_s:.1f} s (the first epoch beyond a later one: compilation, CUDA graph "
        f"capture, the cache's copy), so {fit.fit_s - fit.one_time_s:.1f} s without them; later epochs "
        f"{fit.epoch_ips:,.0f} images/s with validation. At that rate 14,400 crops x 100 epochs: ~{estimate:,.0f} s "
        f"({fit.one_time_s:.0f} s one-time + {SEED_IMAGES / fit.epoch_ips:,.0f} s)",
        flush=True,
    )


def print_profile(fit: FitTiming) -> None:
    """Where the seed experiment's time went, hook by hook: what outside the training batches costs each epoch."""
    print(f"\nThe seed experiment's slowest hooks (Lightning's SimpleProfiler; fit {fit.fit_s:.1f} s):\n")
    print("| hook | total s | calls | ms per call |\n|---|---:|---:|---:|")
    for action, total, calls in slowest_hooks(fit.profile):
        print(f"| {action[:90]} | {total:.2f} | {calls} | {1e3 * total / max(calls, 1):.1f} |")


# -- the data -------------------------------------------------------------------------------------------------------


def demo_datamodule(args: argparse.Namespace):
    """The datamodule train.py would use, set up for fitting: the demo's by default (`--video`, `--cache-dir` choose
    another), its crops extracted first when missing."""
    settings = {"progress": False}
    if args.video:
        settings["video"] = str(args.video)
    if args.cache_dir:
        settings["cache_dir"] = str(args.cache_dir)
    dm = FaceCropDataModule(**settings)
    dm.setup("fit")
    return dm


def training_crops(args: argparse.Namespace) -> np.ndarray:
    """The crops train.py would train on."""
    return demo_datamodule(args).data.crops


# -- (a) and (b): the bare step -------------------------------------------------------------------------------------


def synchronizer(device: torch.device) -> Callable[[], None]:
    """Waits for the device before a clock is read: GPU work runs behind the host."""
    return torch.cuda.synchronize if device.type == "cuda" else lambda: None


def bare_loop(
    crops: np.ndarray,
    batch: int,
    steps: int,
    device: torch.device,
    mode: str | None = None,
    warmup: int = 3,
    captured: bool = False,
) -> tuple[float, float]:
    """(images/s, one-time seconds of the warm-up steps) of the floor to compare with: crops on the device, a random
    batch gathered there, converted, forward, the default objective (beta 1, sigma 0.1), backward, Adam (fused on a
    GPU, as BetaVAEModule's). With `mode`, forward, loss and backward are torch.compile'd, as model.compile does;
    with `captured`, they are replayed as one CUDA graph, as model.cuda_graph does."""
    torch.manual_seed(0)
    if mode:
        torch._dynamo.reset()  # each batch size gets its own static graph, not a dynamic-shape recompile
    model = BetaVAE().to(device)
    log_sigma = torch.tensor(math.log(0.1), device=device)  # a tensor already there: a float would be copied

    def objective(x: torch.Tensor) -> torch.Tensor:
        x_mean, mu, logvar, _ = model(x)
        return beta_vae_loss(x, x_mean, mu, logvar, log_sigma, beta=1.0).loss

    loss_of = torch.compile(objective, mode=mode) if mode else objective

    def backward(x: torch.Tensor, weight: float | torch.Tensor, capacity: None) -> tuple[torch.Tensor]:
        loss = loss_of(x)
        loss.backward()
        return (loss.detach(),)

    data = torch.from_numpy(crops).to(device)
    return optimizer_steps(data, batch, steps, list(model.parameters()), backward, captured, warmup)


def optimizer_steps(
    data: torch.Tensor,
    batch: int,
    steps: int,
    params: list[torch.Tensor],
    backward: Callable[[torch.Tensor, float, None], tuple[torch.Tensor, ...]],
    captured: bool = False,
    warmup: int = 3,
) -> tuple[float, float]:
    """(images/s, one-time seconds of the warm-up steps) of training steps on crops already on the device: a random
    batch gathered there and converted, `backward(x, weight, capacity)` (forward, loss and backward: eager, or
    replayed as one CUDA graph with `captured`), then Adam (fused on a GPU, as the modules' own)."""
    device = data.device
    optimizer = torch.optim.Adam(params, lr=1e-4, fused=device.type == "cuda")
    replay = speed.CapturedStep(backward, params) if captured else None

    def step() -> None:
        x = to_float_images(data.index_select(0, torch.randint(0, len(data), (batch,), device=device)))
        if replay is not None:
            replay(x, 1.0, None)
        else:
            torch.compiler.cudagraph_mark_step_begin()
            optimizer.zero_grad(set_to_none=True)
            backward(x, 1.0, None)
        optimizer.step()

    return timed_steps(step, steps, warmup, synchronizer(device), batch)


def timed_steps(
    step: Callable[[], None], steps: int, warmup: int, sync: Callable[[], None], batch: int, chunks: int = 5
) -> tuple[float, float]:
    """(images/s, one-time seconds of the warm-up): the steps are timed in chunks and the fastest chunk counts, since
    other load on the machine only ever slows a chunk down."""
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warm_s = time.perf_counter() - start
    per_chunk, step_s = max(1, steps // chunks), math.inf
    for _ in range(min(chunks, steps)):
        start = time.perf_counter()
        for _ in range(per_chunk):
            step()
        sync()
        step_s = min(step_s, (time.perf_counter() - start) / per_chunk)
    return batch / step_s, max(0.0, warm_s - warmup * step_s)


# -- (d): the common DataLoader pipeline ----------------------------------------------------------------------------


def dataloader_loop(crops: np.ndarray, batch: int, steps: int, device: torch.device, workers: int) -> float:
    """What common VAE repositories do: a per-item Dataset over numpy, a shuffling DataLoader with workers."""

    class Items(Dataset):
        def __len__(self) -> int:
            return len(crops)

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.from_numpy(crops[i]).permute(2, 0, 1).float() / 255.0

    torch.manual_seed(0)
    model = BetaVAE().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    log_sigma = torch.tensor(math.log(0.1), device=device)
    loader = DataLoader(
        Items(),
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )
    batches = iter(())

    def step() -> None:
        nonlocal batches
        x = next(batches, None)
        if x is None:
            batches = iter(loader)
            x = next(batches)
        x = x.to(device, non_blocking=True)
        x_mean, mu, logvar, _ = model(x)
        loss = beta_vae_loss(x, x_mean, mu, logvar, log_sigma, beta=1.0).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    images_per_s, _ = timed_steps(step, steps, 3, synchronizer(device), batch)
    return images_per_s


# -- (c): train.py's own loop ---------------------------------------------------------------------------------------


class Clock(pl.Callback):
    """Per epoch: the images trained on, the seconds to the last training batch, and to the epoch's end (validation,
    grids and logging included)."""

    def __init__(self) -> None:
        self.epochs: list[tuple[int, float, float]] = []
        self.images, self.epoch_start, self.train_end, self.fit_s = 0, 0.0, 0.0, 0.0
        self.largest_batch = 0

    def on_fit_start(self, trainer, pl_module) -> None:
        self.fit_s = time.perf_counter()

    def on_fit_end(self, trainer, pl_module) -> None:
        self.fit_s = time.perf_counter() - self.fit_s

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epoch_start, self.images = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.images += len(batch["image"])
        self.largest_batch = max(self.largest_batch, len(batch["image"]))
        self.train_end = time.perf_counter()  # the epoch's last batch reads the step values: the device is done

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        now = time.perf_counter()
        self.epochs.append((self.images, self.train_end - self.epoch_start, now - self.epoch_start))

    def timing(self) -> FitTiming:
        later = self.epochs[1:] or self.epochs
        images = sum(n for n, _, _ in later)
        return FitTiming(
            fit_s=self.fit_s,
            images=sum(n for n, _, _ in self.epochs),
            train_ips=max(n / t for n, t, _ in later),
            epoch_ips=images / sum(e for _, _, e in later),
            first_epoch_s=self.epochs[0][2],
            later_epoch_s=sum(e for _, _, e in later) / len(later),
            largest_batch=self.largest_batch,
        )


def train_py_loop(batch: int, epochs: int, overrides: list[str], profile: bool = False) -> FitTiming:
    """train.py's own code path as configured (W&B offline, every callback), on the data the overrides name. With
    `profile`, under Lightning's SimpleProfiler, whose report (seconds per hook) comes back in FitTiming.profile."""
    torch._dynamo.reset()  # a compiled step starts from nothing, as in a fresh train.py process
    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "train",
                overrides=[
                    *overrides,
                    f"trainer.max_epochs={epochs}",
                    f"data.loader.batch_size={batch}",
                    "test=false",
                    "trainer.enable_progress_bar=false",
                    "data.progress=false",
                ],
            )
        with open_dict(cfg):
            cfg.paths.output_dir = out
            if profile:
                cfg.trainer.profiler = {
                    "_target_": "pytorch_lightning.profilers.SimpleProfiler",
                    "dirpath": out,
                    "filename": "profile",  # Lightning writes fit-profile.txt
                }
        real = training.instantiate_group
        training.instantiate_group = lambda group: real(group) + ([clock] if group is cfg.get("callbacks") else [])
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")  # the table is the output, not W&B's run summaries
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # train.py's closing report: the table is the output
                training.train(cfg)
        finally:
            training.instantiate_group = real
        report = Path(out, "fit-profile.txt")
        timing = clock.timing()
        timing.profile = report.read_text() if profile and report.exists() else None
    return timing


def slowest_hooks(report: str, n: int = 15) -> list[tuple[str, float, int]]:
    """(action, total seconds, calls) of the n actions of a SimpleProfiler report that took longest in all."""
    rows = []
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or cells[0] in ("Action", "Total"):
            continue
        try:
            rows.append((cells[0], float(cells[3]), int(cells[2])))
        except ValueError:
            continue  # the header's rules and titles
    return sorted(rows, key=lambda row: -row[1])[:n]
