"""evaluate.py compare=[...]: a beta-VAE and a WGAN-GP side by side on their shared measures (analysis/compare.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import make_train_cfg
from hydra import compose, initialize_config_dir

from facevae import training
from facevae.core.errors import user_error
from facevae.core.outputs import MANIFEST
from facevae.evaluation import evaluate
from facevae.evaluation.compare import compare
from facevae.evaluation.generator import SHARED_MEASURES

ROOT = Path(__file__).resolve().parents[1]


def eval_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("evaluate", overrides=["wandb=false", "n_samples=200", *overrides])


@pytest.fixture(scope="module")
def vae_checkpoint(tmp_path_factory, long_clip) -> Path:
    """A beta-VAE trained one epoch on the same clip as the session's WGAN."""
    tmp = tmp_path_factory.mktemp("vae")
    training.train(make_train_cfg(tmp, long_clip, "test=false", "callbacks=none"))
    return tmp / "run" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def compared(vae_checkpoint, wgan_run, tmp_path_factory):
    wgan = wgan_run / "checkpoints" / "last.ckpt"
    # The WGAN evaluated first in its default place: the comparison reuses that metrics.json.
    evaluate(eval_cfg(f"ckpt_path={wgan}"))
    out = tmp_path_factory.mktemp("compare") / "out"
    rows, out_dir = compare(eval_cfg(f"compare=[{vae_checkpoint},{wgan}]", f"output_dir={out}"))
    return rows, out_dir


def test_compare_writes_one_row_per_checkpoint_with_the_shared_measures(compared):
    _, out = compared
    assert {p.name for p in out.iterdir()} == {"compare.csv", "compare.md", "compare.png", MANIFEST}
    with (out / "compare.csv").open() as f:
        vae, wgan = list(csv.DictReader(f))
    assert (vae["model"], wgan["model"]) == ("beta-VAE", "WGAN-GP")
    assert vae["latent_dim"] == wgan["latent_dim"] == "32" and vae["beta"] == "2.0" and wgan["beta"] == "—"
    for row in (vae, wgan):
        assert all(0 <= float(row[k]) < 1e3 for k in SHARED_MEASURES if not k.endswith("_ci"))
        for key in (k for k in SHARED_MEASURES if k.endswith("_ci")):  # an interval, [low, high]
            low, high = json.loads(row[key])
            assert low <= float(row[key[: -len("_ci")]]) <= high, key
    assert 0 < float(vae["psnr"]) < 60 and wgan["psnr"] == "—"
    assert (vae["source"], wgan["source"]) == ("computed", "metrics.json")


def test_compare_md_is_a_table_naming_each_checkpoint(compared):
    rows, out = compared
    text = (out / "compare.md").read_text()
    assert text.splitlines()[0].startswith("| name | model | latent_dim | beta | sample_face_rate")
    assert all(row["checkpoint"] in text for row in rows)


@pytest.mark.parametrize(
    "overrides, words",
    [(["compare=[]"], "nothing to evaluate"), (["compare=[a.ckpt]", "ckpt_path=b.ckpt"], "not both")],
)
def test_compare_refuses_an_empty_list_and_a_ckpt_path_beside_it(tmp_path, overrides, words):
    with pytest.raises(Exception) as err:
        cfg = eval_cfg(*overrides, f"output_dir={tmp_path / 'out'}")
        compare(cfg) if cfg.compare else evaluate(cfg)
    assert words in str(user_error(err.value))
    assert not (tmp_path / "out").exists()
