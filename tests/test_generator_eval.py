"""evaluate.py on a WGAN-GP checkpoint: the measures that apply to a generator (facevae/evaluation/generator.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import module_of
from hydra import compose, initialize_config_dir

from facevae.core.errors import user_error
from facevae.core.outputs import MANIFEST
from facevae.evaluation import evaluate
from facevae.evaluation.generator import SHARED_MEASURES, sample_measures
from facevae.models import BetaVAEModule
from facevae.models.latent_paths import prior_corners

ROOT = Path(__file__).resolve().parents[1]


def eval_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("evaluate", overrides=["wandb=false", "n_samples=200", *overrides])


@pytest.fixture(scope="module")
def evaluated(wgan_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("wgan-eval") / "out"
    return evaluate(eval_cfg(f"ckpt_path={wgan_run / 'checkpoints' / 'last.ckpt'}", f"output_dir={out}"))


def test_a_wgan_checkpoint_gets_the_sample_measures_and_figures_and_nothing_that_needs_an_encoder(evaluated):
    metrics, out = evaluated
    assert {p.name for p in out.iterdir()} == {"metrics.json", "samples.png", "interpolation.png", MANIFEST}
    written = json.loads((out / "metrics.json").read_text())
    assert all(isinstance(written[k], int | float) for k in SHARED_MEASURES if not k.endswith("_ci")), written
    assert all(len(written[k]) == 2 for k in SHARED_MEASURES if k.endswith("_ci"))
    assert written["sample_precision_real"] > 0 and written["sample_fd"] >= 0
    assert 0 <= written["sample_face_rate"] <= 1 and written["sample_diversity"] > 0
    assert written["sample_nn_train_distance"] > 0 and written["heldout_nn_train_distance"] > 0
    assert written["model_class"].endswith("WGANGPModule") and written["n_samples"] == 200
    assert "psnr" not in written and "mig" not in written


def test_shared_measures_are_the_ones_the_beta_vae_evaluation_computes_on_its_prior_samples():
    # The same function on a beta-VAE gives the keys its full evaluation writes, from the same prior draws.
    torch.manual_seed(0)
    model = module_of(BetaVAEModule, latent_dim=4).eval()
    crops = np.random.default_rng(0).integers(0, 256, (20, 64, 64, 3), dtype=np.uint8)
    measures = sample_measures(model, crops[:12], crops[12:], n_samples=10, seed=3)
    assert set(measures) == set(SHARED_MEASURES)
    assert np.array_equal(prior_corners(4, 3), np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32))


def test_neither_ckpt_path_nor_compare_is_refused_in_one_line(tmp_path):
    with pytest.raises(Exception) as err:
        evaluate(eval_cfg(f"output_dir={tmp_path / 'out'}"))
    assert "ckpt_path=PATH, sweep_dir=DIR (a train.py -m sweep), or compare=" in str(user_error(err.value))
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cli = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py")], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )
    assert cli.returncode == 2 and cli.stderr.strip().splitlines() == [
        "error: nothing to evaluate: give ckpt_path=PATH, sweep_dir=DIR (a train.py -m sweep), "
        "or compare=[PATH,PATH] for a side-by-side table"
    ]
