"""python -m facevae.bench: its loops run and its command line parses. The timings themselves are never checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_overrides

from facevae.bench import build_parser, data_overrides
from facevae.bench.training import Clock, bare_loop, dataloader_loop, slowest_hooks, train_py_loop

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (32, 64, 64, 3), dtype=np.uint8)


def test_the_bare_and_dataloader_loops_run_a_few_steps(crops):
    images_per_s, one_time_s = bare_loop(crops, 4, 2, CPU, warmup=1)
    assert images_per_s > 0 and one_time_s >= 0
    assert dataloader_loop(crops, 4, 2, CPU, workers=0) > 0


def test_the_clock_leaves_the_first_epoch_out_of_the_rates():
    clock = Clock()
    clock.fit_s, clock.largest_batch = 10.0, 64
    clock.epochs = [(640, 4.0, 5.0), (640, 1.0, 2.0), (640, 1.0, 2.0)]
    timing = clock.timing()
    assert timing.train_ips == 640 and timing.epoch_ips == 320 and timing.one_time_s == 3.0
    assert timing.note(64) == "" and "64, per step" in timing.note(1024)


def test_every_section_parses_and_the_data_goes_to_train_py(tmp_path):
    parser = build_parser()
    for section in ("extraction", "alignment", "train", "sweep", "results"):
        module = parser.parse_args([section]).run.split(":")[0]
        assert module in ("extraction", "alignment", "training", "sweep", "results")
    args = parser.parse_args(["sweep", "--video", str(tmp_path / "me.mp4"), "--betas", "1", "4", "--n-jobs", "2"])
    assert args.betas == [1.0, 4.0] and data_overrides(args) == [f"data.video={tmp_path / 'me.mp4'}"]
    args = parser.parse_args(["sweep", "--bare-only", "--batch-sizes", "64", "--steps", "5"])
    assert args.bare_only and args.batch_sizes == [64] and args.steps == 5


def test_a_profiled_fit_says_which_hooks_took_its_time(tmp_path, demo_clip):
    keep = [o for o in tiny_overrides(demo_clip, tmp_path / "cache") if not o.startswith(("trainer.max", "data.batch"))]
    fit = train_py_loop(8, 2, [*keep, "logger=csv"], profile=True)
    hooks = slowest_hooks(fit.profile, n=50)
    names = [action for action, _, _ in hooks]
    assert "run_training_epoch" in names and any("validation_step" in name for name in names)
    assert all(total >= 0 and calls > 0 for _, total, calls in hooks)
    assert [total for _, total, _ in hooks] == sorted((total for _, total, _ in hooks), reverse=True)


def test_the_evaluation_and_feature_sections_parse_and_time_each_log_line():
    import logging

    from facevae.bench.evaluation import _SectionTimer

    parser = build_parser()
    args = parser.parse_args(["evaluate", "--ckpt", "x.ckpt", "--set", "sampler=prior"])
    assert args.run == "evaluation:bench_evaluate" and args.overrides == ["sampler=prior"]
    assert parser.parse_args(["features", "--n", "50"]).run == "features:bench_features"
    timer = _SectionTimer()
    for message in ("reconstruction", "samples"):
        timer.emit(logging.makeLogRecord({"msg": message}))
    timer.close_section()
    assert [name for name, _, _ in timer.rows] == ["start", "reconstruction", "samples"]
    assert all(wall >= 0 and cpu >= 0 for _, wall, cpu in timer.rows)


def test_the_defaults_section_parses_and_its_table_reads_each_candidates_scores():
    from facevae.bench.defaults import CANDIDATES, table

    args = build_parser().parse_args(["defaults", "--jobs", "1", "--only", "learned"])
    assert args.run == "defaults:bench_defaults" and args.jobs == 1 and args.only == ["learned"]
    # Every candidate spells out what it compares, so the table stays right whatever the defaults are.
    assert all(any(o.startswith("model.optimizer.lr=") for o in overrides) for overrides in CANDIDATES.values())
    metrics = {
        "val_psnr": 32.5,
        "psnr": 31.0,
        "psnr_mean_face": 18.1,
        "sample_precision": 0.42,
        "sample_precision_real": 0.43,
        "sample_recall": 0.74,
        "sample_recall_real": 0.69,
        "smile_auc": 0.998,
        "smile_knn_purity": 0.98,
        "smile_knn_purity_chance": 0.55,
        "shift_smile_gain": 0.8,
        "shift_smile_progress": 1.2,
        "shift_mouth_ratio": 1.1,
        "shift_smile_gain_conditional": 0.7,
        "shift_smile_progress_conditional": 1.03,
        "shift_mouth_ratio_conditional": 2.8,
    }
    row = table([("lr 1e-3, learned sigma, beta 2", metrics, 419.0)]).splitlines()[-1]
    assert "| 32.50 | 31.00 (18.10) | 0.42 (0.98x) | 0.74 (1.07x) | 0.998 | 0.98 (0.55) |" in row
    assert "THE FACES SMILE (conditional path: 103%" in row and row.endswith("| 419 |")


def test_the_shift_test_compares_the_larger_shift_with_the_smile_in_crops_or_codes():
    from facevae.bench.alignment import _shift_distances

    neutral = np.zeros(4)
    moments = [[neutral, neutral + 2.0, neutral + 0.5, neutral + 1.0], [neutral, neutral + 4.0, neutral, neutral]]
    assert _shift_distances(moments) == (0.5, 3.0)  # shifts: max(0.5, 1) and 0; smiles: 2 and 4
    assert build_parser().parse_args(["alignment", "--ckpt", "m.ckpt"]).ckpt == "m.ckpt"
