"""`python -m facevae.bench SECTION`: how fast the pipeline runs on this machine, printed as markdown tables.

    python -m facevae.bench extraction [--video PATH] [--seconds 300] [--repeat 1]
    python -m facevae.bench alignment  [--frames 240] [--seed 5] [--ckpt PATH]
    python -m facevae.bench train      [--batch-sizes 64 1024] [--steps 20] [--epochs 10] [--fit-epochs 3]
                                       [--profile]
    python -m facevae.bench sweep      [--betas 1 2 4 8 16] [--n-jobs 5] [--epochs 3] [--batch-sizes 64 1024]
    python -m facevae.bench results    [--epochs 5] [--seeds 0 1 2]
    python -m facevae.bench evaluate   --ckpt PATH [--n-samples 1000] [--output-dir DIR] [--set KEY=VALUE]
    python -m facevae.bench features   [--n 1000]
    python -m facevae.bench defaults   [--jobs 2] [--only WORD ...]

extraction: decoding and face extraction against realtime (extraction.py). alignment: each `data.extraction.align`
method's accuracy and steadiness against the demo's true eye positions, and its cost (alignment.py). train: images/s of
a bare eager step, a bare compiled step, the full train.py loop and a DataLoader-from-numpy loop, and the seed
experiment's fit time (training.py). sweep: a beta sweep as jobs side by side and as one stacked model, against one run
(sweep.py). results: the validation loss with each speed switch on and off, beside the run-to-run noise (results.py).
evaluate: evaluate.py's time on one checkpoint, section by section (evaluation.py). features: not a timing but a
measurement, how each candidate feature space for the sample-quality scores ranks flawed sample sets (features.py).
defaults: the candidate defaults of `make train` trained and evaluated side by side (defaults.py). The
sections that train take the data as train.py does (--video, --cache-dir; the built-in demo by default), take train.py
overrides for every run they time (--set KEY=VALUE) and time on the GPU when there is one. Tests check behaviour, never
speed: these tables are the record, kept in the README's Performance section.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from pathlib import Path

from facevae.core.errors import exit_on_error


def data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", type=Path, help="train on this video's crops (default: the built-in demo video)")
    parser.add_argument("--cache-dir", type=Path, help="where its crop cache is, or goes (default: data/cache)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a train.py override for every run it times, e.g. --set experiment=seed_paper (repeatable)",
    )


def data_overrides(args: argparse.Namespace) -> list[str]:
    """train.py overrides for the data the benchmark was pointed at."""
    overrides = []
    if args.video:
        overrides.append(f"data.video={args.video.resolve()}")
    if args.cache_dir:
        overrides.append(f"data.cache_dir={args.cache_dir.resolve()}")
    return [*overrides, *args.overrides]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m facevae.bench", description="Time a part of the pipeline and print a markdown table."
    )
    sections = parser.add_subparsers(dest="section", required=True, metavar="SECTION")

    extraction = sections.add_parser("extraction", help="decoding and face extraction on a 720p 30 fps video")
    extraction.add_argument("--video", type=Path, help="time this video instead of the demo one")
    extraction.add_argument("--seconds", type=float, default=300.0, help="length of the demo video to make or reuse")
    extraction.add_argument("--repeat", type=int, default=1, help="runs of each step; the fastest is reported")
    extraction.set_defaults(run="extraction:bench_extraction")

    alignment = sections.add_parser("alignment", help="face alignment against the demo's true eye positions")
    alignment.add_argument("--frames", type=int, default=240, help="demo frames rendered at 7.5 fps")
    alignment.add_argument("--seed", type=int, default=5, help="the demo's factor seed")
    alignment.add_argument("--ckpt", help="also the shift test in this checkpoint's codes (its training's alignment)")
    alignment.set_defaults(run="alignment:bench_alignment")

    train = sections.add_parser("train", help="images/s: bare eager and compiled steps, train.py, a DataLoader")
    data_arguments(train)
    train.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 1024])
    train.add_argument("--steps", type=int, default=20, help="timed steps of the bare and DataLoader loops")
    train.add_argument("--epochs", type=int, default=10, help="epochs of each train.py loop")
    train.add_argument("--fit-epochs", type=int, default=3, help="epochs of the seed experiment (0: skip it)")
    train.add_argument(
        "--profile", action="store_true", help="also time the seed experiment's hooks (Lightning's SimpleProfiler)"
    )
    train.add_argument(
        "--compile-mode", help="torch.compile mode of (b) (default: reduce-overhead on a GPU, else default)"
    )
    train.set_defaults(run="training:bench_train")

    sweep = sections.add_parser(
        "sweep", help="a beta sweep as jobs side by side and as one stacked model, against one run"
    )
    data_arguments(sweep)
    sweep.add_argument("--betas", type=float, nargs="+", default=[1, 2, 4, 8, 16])
    sweep.add_argument("--n-jobs", type=int, default=5, help="jobs the joblib launcher runs at once")
    sweep.add_argument("--epochs", type=int, default=3, help="epochs of each job")
    sweep.add_argument("--sequential", action="store_true", help="also time the jobs one after another")
    sweep.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 1024], help="of the bare-step table")
    sweep.add_argument("--steps", type=int, default=50, help="timed steps of each bare step")
    sweep.add_argument("--bare-only", action="store_true", help="only the bare-step table, no train.py runs")
    sweep.set_defaults(run="sweep:bench_sweep")

    results = sections.add_parser("results", help="validation loss with each speed switch on and off")
    data_arguments(results)
    results.add_argument("--epochs", type=int, default=5)
    results.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the eager runs (noise)")
    results.set_defaults(run="results:bench_results")

    evaluation = sections.add_parser("evaluate", help="evaluate.py on one checkpoint, section by section")
    evaluation.add_argument("--ckpt", required=True, help="a checkpoint written by train.py")
    evaluation.add_argument("--n-samples", type=int, default=1000, help="evaluate.py's n_samples")
    evaluation.add_argument("--output-dir", help="keep evaluate.py's results there (default: a temporary directory)")
    evaluation.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an evaluate.py override (repeatable)",
    )
    evaluation.set_defaults(run="evaluation:bench_evaluate")

    defaults = sections.add_parser("defaults", help="the candidate defaults of make train, trained and evaluated")
    data_arguments(defaults)
    defaults.add_argument("--jobs", type=int, default=2, help="candidates trained at once, one thread each")
    defaults.add_argument("--only", nargs="+", default=[], help="candidates whose name holds one of these words")
    defaults.set_defaults(run="defaults:bench_defaults")

    features = sections.add_parser("features", help="which feature space ranks flawed sample sets correctly")
    data_arguments(features)
    features.add_argument("--n", type=int, default=1000, help="training crops in each set (at most all of them)")
    features.set_defaults(run="features:bench_features")
    return parser


@exit_on_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    module, _, function = args.run.partition(":")
    # Each section imports what it times only when chosen: torch alone takes seconds to import.
    getattr(importlib.import_module(f"facevae.bench.{module}"), function)(args)
