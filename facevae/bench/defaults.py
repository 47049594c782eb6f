"""`python -m facevae.bench defaults`: the candidate defaults of `make train`, each trained and evaluated as a user
would, side by side: what the defaults in conf/model/beta_vae.yaml were chosen from.

Each candidate is `train.py` with its overrides (the demo data unless --video is given, `trainer.max_epochs` of
`make train` unless the candidate sets it), then `evaluate.py` on its best checkpoint with the analyses whose numbers
the defaults are judged by: reconstruction, samples, smiles and the expression shift. The table gives each
candidate's validation PSNR, the fitted sampler's precision and recall as shares of their real-vs-real reference,
the smile AUC and k-NN purity, the shift's verdict numbers, and the training wall clock. `--jobs 2` trains two
candidates at once on one thread each (the scores do not change; the wall clocks then count a shared machine).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from facevae.bench import data_overrides
from facevae.bench.machine import describe_machine
from facevae.bench.sweep import run_script, run_train
from facevae.metrics.expression_shift import SUFFIX
from facevae.plots.expression_shift import smiles_verdict

# name -> train.py overrides, each spelled out so the table stays right whatever the defaults are. The first is the
# seed paper's optimiser (Adam at 1e-4) with a fixed decoder sigma.
CANDIDATES: dict[str, list[str]] = {
    "lr 1e-4, sigma 0.1 (the seed's)": ["model.optimizer.lr=1e-4", "model.learn_sigma=false"],
    "lr 1e-4, learned sigma": ["model.optimizer.lr=1e-4", "model.learn_sigma=optimal"],
    "lr 5e-4, sigma 0.1": ["model.optimizer.lr=5e-4", "model.learn_sigma=false"],
    "lr 1e-3, sigma 0.1": ["model.optimizer.lr=1e-3", "model.learn_sigma=false"],
    "lr 1e-3, learned sigma": ["model.optimizer.lr=1e-3", "model.learn_sigma=optimal"],
    "lr 1e-3, learned sigma per pixel": ["model.optimizer.lr=1e-3", "model.learn_sigma=optimal_per_pixel"],
    "lr 1e-3, learned sigma, beta 2": ["model.optimizer.lr=1e-3", "model.learn_sigma=optimal", "model.beta=2"],
    "lr 1e-3, learned sigma, beta 4": ["model.optimizer.lr=1e-3", "model.learn_sigma=optimal", "model.beta=4"],
    "lr 1e-3, learned sigma, 16 latents": [
        "model.optimizer.lr=1e-3",
        "model.learn_sigma=optimal",
        "model.net.latent_dim=16",
    ],
    "lr 1e-3, learned sigma, 100 epochs": [
        "model.optimizer.lr=1e-3",
        "model.learn_sigma=optimal",
        "trainer.max_epochs=100",
    ],
}
ANALYSES = "analysis=[reconstruction,samples,smiles,expression_shift]"


def bench_defaults(args: argparse.Namespace) -> None:
    names = [n for n in CANDIDATES if not args.only or any(o in n for o in args.only)]
    common = [*data_overrides(args), "logger=csv", "data.progress=false", "trainer.enable_progress_bar=false"]
    threads = "1" if args.jobs > 1 else str(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:

        def one(i_name: tuple[int, str]) -> tuple[str, dict, float]:
            i, name = i_name
            return name, *train_and_evaluate(Path(tmp) / f"c{i}", [*common, *CANDIDATES[name]], threads)

        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(one, enumerate(names)))
    print(f"\n{describe_machine('cpu')}; {args.jobs} candidate(s) at a time\n")
    print(table(rows))


def train_and_evaluate(folder: Path, overrides: list[str], threads: str) -> tuple[dict, float]:
    """(evaluate.py's metrics, train.py's wall seconds) for one candidate; its folders live under `folder`."""
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "WANDB_MODE": "disabled"}
    run, out = folder / "run", folder / "evaluation"
    seconds = run_train([f"hydra.run.dir={run}", "test=false", *overrides], env)
    ckpt = next((run / "checkpoints").glob("best-*.ckpt"))
    run_script("evaluate.py", [f"ckpt_path={ckpt}", f"output_dir={out}", "wandb=false", ANALYSES], env)
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["val_psnr"] = _val_psnr(run)
    return metrics, seconds


def _share(metrics: dict, key: str) -> str:
    real = metrics.get(f"{key}_real")
    return f"{metrics[key]:.2f} ({metrics[key] / real:.2f}x)" if real else f"{metrics.get(key, float('nan')):.2f}"


def _shift(metrics: dict) -> str:
    """The expression shift's verdict, as expression_shift.png's title says it."""
    kinds = [k for k, suffix in SUFFIX.items() if f"shift_smile_gain{suffix}" in metrics]
    return smiles_verdict(metrics, kinds).replace("|", "/") if kinds else "-"


def _val_psnr(run: Path) -> float:
    """The best validation PSNR train.py logged (its CSV logger)."""
    values = [
        float(row["val/psnr"])
        for path in run.glob("csv/**/metrics.csv")
        for row in csv.DictReader(path.open())
        if row.get("val/psnr")
    ]
    return max(values, default=float("nan"))


def table(rows: list[tuple[str, dict, float]]) -> str:
    lines = [
        "| candidate | val PSNR dB | test PSNR (mean face) | precision (x real) | recall (x real) | smile AUC "
        "| k-NN purity (chance) | the expression shift | train s |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, m, seconds in rows:
        lines.append(
            f"| {name} | {m['val_psnr']:.2f} | {m['psnr']:.2f} ({m['psnr_mean_face']:.2f}) "
            f"| {_share(m, 'sample_precision')} | {_share(m, 'sample_recall')} "
            f"| {m.get('smile_auc', float('nan')):.3f} "
            f"| {m.get('smile_knn_purity', float('nan')):.2f} ({m.get('smile_knn_purity_chance', float('nan')):.2f}) "
            f"| {_shift(m)} | {seconds:.0f} |"
        )
    return "\n".join(lines)
