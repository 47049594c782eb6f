"""`python -m facevae.bench features`: which feature space ranks flawed sample sets correctly.

Training crops of the demo (or --video) stand in for a perfect generator; each flawed set of
`facevae.metrics.degraded` is made from the same crops. Every set is scored against the held-out test crops in
each candidate feature space, and the table says how each space keeps the rules of `degraded.RANKING`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from facevae.bench.machine import describe_machine
from facevae.bench.training import demo_datamodule
from facevae.metrics import degraded, features
from facevae.metrics.frechet import frechet_distance
from facevae.metrics.prdc import prdc


def demo_split(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """(training crops, test crops) of the data train.py would use, with its default split."""
    dm = demo_datamodule(args)
    return np.asarray(dm.images("train")), np.asarray(dm.images("test"))


def feature_spaces(train: np.ndarray) -> dict[str, callable]:
    return {
        "pixel PCA (64, whitened)": features.fit_pixel_pca(train),
        "random CNN (2048)": features.random_cnn_features,
        "random CNN, PCA 128": features.fit_random_cnn(train),
    }


def scores_in(space, heldout: np.ndarray, sets: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    real = space(heldout)
    out = {}
    for name, images in sets.items():
        fake = space(images)
        out[name] = {**vars(prdc(real, fake)), "fd": frechet_distance(real, fake)}
    return out


def bench_features(args: argparse.Namespace) -> None:
    train, heldout = demo_split(args)
    base = train[np.linspace(0, len(train) - 1, min(args.n, len(train))).round().astype(int)]
    sets = {"real": base, **degraded.degraded_sets(base, seed=0)}
    print(f"\n{describe_machine()}; {len(base)} training crops per set against {len(heldout)} test crops\n")
    for name, space in feature_spaces(train).items():
        start = time.perf_counter()
        scores = scores_in(space, heldout, sets)
        seconds = time.perf_counter() - start
        margins = degraded.ranking_margins(scores)
        broken = [rule for rule, margin in margins if margin <= 0]
        print(
            f"### {name}: {len(margins) - len(broken)}/{len(margins)} rules kept, smallest margin "
            f"{min(m for _, m in margins):+.3f}, {seconds:.1f} s\n"
        )
        print("| set | precision | recall | density | coverage | FD |\n|---|---:|---:|---:|---:|---:|")
        for set_name, s in scores.items():
            print(
                f"| {set_name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['density']:.3f} | "
                f"{s['coverage']:.3f} | {s['fd']:.4g} |"
            )
        print("\nbroken: " + ("; ".join(broken) if broken else "none") + "\n")
