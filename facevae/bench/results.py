"""`python -m facevae.bench results`: speed must not change results. The validation loss after a short run with each
speed switch on, against eager fp32 runs of several seeds (the run-to-run noise a switch's difference is judged by)
and a repeat of the same seed (which shows whether the device itself is deterministic)."""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time

import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from facevae import training
from facevae.bench import data_overrides
from facevae.bench.machine import describe_machine
from facevae.core.config import CONF_DIR

EAGER = [
    "model.compile=false",
    "model.cuda_graph=false",
    "data.loader.on_device=true",
    "model.channels_last=false",
    "trainer.precision=32-true",
]


def switches(device: str) -> list[tuple[str, list[str]]]:
    """Each switch on alone, everything else eager: (name, overrides on top of EAGER)."""
    mode = "reduce-overhead" if device == "cuda" else "default"
    return [
        ("data.loader.on_device=false", ["data.loader.on_device=false"]),
        ("model.channels_last=true", ["model.channels_last=true"]),
        (f"model.compile={mode}", [f"model.compile={mode}"]),
        *([("model.cuda_graph=true", ["model.cuda_graph=true"])] if device == "cuda" else []),
        ("trainer.precision=bf16-mixed", ["trainer.precision=bf16-mixed"]),
    ]


def bench_results(args: argparse.Namespace) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    base = [*data_overrides(args), *EAGER]
    runs = [(f"eager fp32, seed {s}", val_loss([*base, f"seed={s}"], args.epochs)) for s in args.seeds]
    runs.append((f"eager fp32, seed {args.seeds[0]} again", val_loss([*base, f"seed={args.seeds[0]}"], args.epochs)))
    for name, overrides in switches(device):
        runs.append(
            (f"{name}, seed {args.seeds[0]}", val_loss([*base, *overrides, f"seed={args.seeds[0]}"], args.epochs))
        )
    reference = runs[0][1][0]
    seeds = [loss for _, (loss, _) in runs[: len(args.seeds)]]
    print(f"\n{describe_machine(device)}; {args.epochs} epochs, batch 64, validation loss at the end\n")
    print("| run | val/loss | minus seed 0's | fit s |\n|---|---:|---:|---:|")
    for name, (loss, seconds) in runs:
        print(f"| {name} | {loss:.2f} | {loss - reference:+.2f} | {seconds:.0f} |")
    if len(seeds) > 1:
        print(
            f"\nRun-to-run noise, seeds {', '.join(map(str, args.seeds))}: standard deviation "
            f"{statistics.stdev(seeds):.2f}, range {max(seeds) - min(seeds):.2f} (val/loss, nats per image)"
        )


def val_loss(overrides: list[str], epochs: int) -> tuple[float, float]:
    """(the validation loss at the end, the seconds it took) of train.py with these overrides: validation only at
    the last epoch, no callbacks but the checkpoint, no logger."""
    torch._dynamo.reset()
    with tempfile.TemporaryDirectory() as out:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "train",
                overrides=[
                    *overrides,
                    "callbacks=none",
                    "logger=none",
                    "test=false",
                    f"trainer.max_epochs={epochs}",
                    f"trainer.check_val_every_n_epoch={epochs}",
                    "+trainer.num_sanity_val_steps=0",
                    "trainer.enable_progress_bar=false",
                    "trainer.enable_model_summary=false",
                    "data.progress=false",
                ],
            )
        with open_dict(cfg):
            cfg.paths.output_dir = out
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # train.py's closing report: the table is the output
            metrics = training.train(cfg)
    return metrics["val/loss"], time.perf_counter() - start
