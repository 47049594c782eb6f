"""evaluate.py end to end on a tiny trained checkpoint, and its refusals of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_train_cfg
from hydra import compose, initialize_config_dir

from facevae import training
from facevae.core.checkpoint import load_run
from facevae.core.errors import user_error
from facevae.data.from_checkpoint import datamodule_for
from facevae.evaluation import FIGURES, evaluate

ROOT = Path(__file__).resolve().parents[1]
QUALITY = ("precision", "recall", "density", "coverage", "fd")
REQUIRED = [
    "psnr",
    "ssim",
    "neg_elbo",
    "kl",
    "active_units",
    "psnr_mean_face",
    "psnr_frame_mean",
    "sample_face_rate",
    *(f"{who}sample_{m}{end}" for who in ("", "prior_") for m in QUALITY for end in ("", "_real")),
    *(f"sample_{m}_recon" for m in QUALITY),
    "prior_sample_face_rate",
    "prior_diversity_ratio",
    "prior_memorisation_ratio",
    "sampler_components",
    "smile_silhouette",
    "smile_auc",
    "shift_smile_gain",
    "mig",
    "sap",
    "dci_disentanglement",
    "dci_completeness",
    "dci_informativeness",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A model trained briefly on a 30 s demo clip whose held-out blocks hold both smiles and other faces."""
    from facevae.data.synthetic import write_demo_video

    tmp = tmp_path_factory.mktemp("evaltrain")
    clip = write_demo_video(tmp / "clip30.mp4", seconds=30, seed=0)
    cfg = make_train_cfg(
        tmp,
        clip,
        "trainer.max_epochs=3",
        "test=false",
        "data.loader.batch_size=16",
        "data.split.block_s=2",
        "data.split.val_fraction=0.2",
        "data.split.test_fraction=0.2",
    )
    training.train(cfg)
    return tmp / "run" / "checkpoints" / "last.ckpt"


def eval_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("evaluate", overrides=["wandb=false", "n_samples=1000", "shift_frames=8", *overrides])


@pytest.fixture(scope="module")
def evaluated(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "out"
    metrics, out_dir = evaluate(eval_cfg(f"ckpt_path={checkpoint}", f"output_dir={out}"))
    return metrics, out_dir


def test_evaluation_writes_every_file(evaluated):
    _, out = evaluated
    assert {"metrics.json", "latents.npz", *FIGURES} <= {p.name for p in out.iterdir()}


def test_metrics_json_has_every_required_key_as_a_number(evaluated):
    _, out = evaluated
    metrics = json.loads((out / "metrics.json").read_text())
    missing = [k for k in REQUIRED if not isinstance(metrics.get(k), int | float)]
    assert not missing
    assert 0 < metrics["psnr"] < 60 and -1 <= metrics["ssim"] <= 1
    assert 0 <= metrics["sample_face_rate"] <= 1 and 0 <= metrics["smile_auc"] <= 1
    assert metrics["factor_bins"] == 20
    assert metrics["sampler"] == "fitted"
    for key in (f"{who}sample_{m}_ci" for who in ("", "prior_") for m in QUALITY):
        low, high = metrics[key]
        assert low <= metrics[key[: -len("_ci")]] <= high, key
    assert metrics["psnr"] > metrics["psnr_mean_face"] - 10  # both on the test frames, in dB


def test_the_fitted_sampler_is_saved_beside_the_metrics(evaluated):
    from facevae.models.latent_sampler import GaussianMixtureSampler

    metrics, out = evaluated
    sampler = GaussianMixtureSampler.load(out / "sampler.npz")
    assert len(sampler.weights) == metrics["sampler_components"] and sampler.means.shape[1] == 32


def test_sample_scores_are_deterministic_for_a_seed_and_follow_the_chosen_sampler(checkpoint):
    from facevae.evaluation.samplers import evaluate_samplers
    from facevae.models.inference import decode_latents, encode_images

    run = load_run(checkpoint)
    dm = datamodule_for(run)
    mu, _ = encode_images(run.model, dm.data.crops)
    images = {"train": dm.images("train"), "test": dm.images("test")}
    images["recon"] = decode_latents(run.model, mu[dm.rows("test")])
    images["train_recon"] = decode_latents(run.model, mu[dm.rows("train")])
    args = (run.model, mu[dm.rows("train")], mu[dm.rows("val")], images, 60, 3)
    first, again = evaluate_samplers(*args, "fitted").metrics, evaluate_samplers(*args, "fitted").metrics
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    swapped = evaluate_samplers(*args, "prior").metrics
    assert swapped["sample_precision"] == first["prior_sample_precision"]
    assert swapped["fitted_sample_recall"] == first["sample_recall"]


def test_an_unknown_sampler_is_refused(tmp_path, checkpoint):
    assert "sampler=gmm" in _refused([f"ckpt_path={checkpoint}", "sampler=gmm"], tmp_path / "out")


def test_latents_npz_holds_codes_frames_and_factor_labels(evaluated, checkpoint):
    _, out = evaluated
    latents = np.load(out / "latents.npz")
    n = len(latents["frame"])
    assert latents["mu"].shape == (n, 32) and latents["logvar"].shape == (n, 32)
    assert latents["factor_labels"].shape == (n, 9) and latents["factor_labels"].dtype.kind == "i"
    assert list(latents["factor_names"])[:2] == ["smile", "brow"]


@pytest.mark.slow  # a whole evaluation with a second extraction: over 30 s on 2 cores
def test_a_smiles_set_from_a_video_is_used_instead_of_the_factor(checkpoint, tmp_path):
    from facevae.data.synthetic import write_demo_video

    smiles = write_demo_video(tmp_path / "smiles" / "smiling.mp4", seconds=4, smiling=True, seed=5)
    metrics, _ = evaluate(
        eval_cfg(
            f"ckpt_path={checkpoint}",
            f"output_dir={tmp_path / 'out'}",
            f"smiles={smiles}",
            f"data.cache_dir={tmp_path / 'cache'}",
        )
    )
    assert metrics["n_smile"] >= 25
    # A 4 s clip is one 10 s block of time: it is cut into stretches, so the AUC is still a number.
    assert 0 <= metrics["smile_auc"] <= 1 and "cut into 5 stretches" in metrics["smile_auc_groups"]
    assert metrics["smile_label_rule"].startswith("smile factor")  # the video's own factor labels its frames


@pytest.fixture(scope="module")
def selfie(tmp_path_factory) -> tuple[Path, Path]:
    """A model of a 30 s clip without a factor sidecar, as a user's own video: nobody labelled its smiles. Returns
    the checkpoint and the truth, kept apart from the video."""
    from facevae.data.synthetic import write_demo_video

    tmp = tmp_path_factory.mktemp("selfie")
    clip = write_demo_video(tmp / "me.mp4", seconds=30, seed=4, size=(640, 360))
    truth = clip.with_name("me.factors.csv").rename(tmp / "truth.csv")
    cfg = make_train_cfg(tmp, clip, "trainer.max_epochs=2", "test=false", "data.loader.batch_size=16")
    training.train(cfg)
    return tmp / "run" / "checkpoints" / "last.ckpt", truth


def _photos_of_a_smile(folder: Path) -> Path:
    import av
    import cv2

    from facevae.data.synthetic import write_demo_video

    clip = write_demo_video(folder.parent / "smiling.mp4", seconds=5, seed=6, smiling=True, size=(640, 360))
    folder.mkdir()
    with av.open(str(clip)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 10 == 0:
                cv2.imwrite(str(folder / f"smile{i:03d}.png"), frame.to_ndarray(format="bgr24"))
    cv2.imwrite(str(folder / "wall.png"), np.full((360, 640, 3), 128, np.uint8))  # no face: named, not fatal
    return folder


@pytest.mark.slow  # a whole evaluation with a second extraction: over 30 s on 2 cores
def test_a_few_photos_label_the_videos_own_smiles_and_every_number_comes_without_warnings(selfie, tmp_path):
    import warnings

    import pandas as pd

    ckpt, truth = selfie
    photos = _photos_of_a_smile(tmp_path / "photos")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics, out = evaluate(
            eval_cfg(f"ckpt_path={ckpt}", f"output_dir={tmp_path / 'out'}", f"smiles={photos}", "shift_frames=16")
        )
    third_party = [f"{w.filename}: {w.message}" for w in caught if "sklearn" in w.filename or "numpy" in w.filename]
    assert not third_party  # e.g. scikit-learn's FitFailedWarning for folds without smiles
    assert "PU" in metrics["smile_label_rule"] and metrics["n_video_smiling"] > 0
    assert 0 <= metrics["smile_auc"] <= 1 and "each of the 15 photos its own group" in metrics["smile_auc_groups"]
    smile = pd.read_csv(truth).set_index("frame")["smile"]
    starts = smile.loc[metrics["shift_start_frames"]].to_numpy()
    assert len(starts) > 0 and np.mean(starts < 0.5) >= 0.9  # the shift starts from faces that do not smile
    assert {"smiles_latent.png", "expression_shift.png"} <= {p.name for p in out.iterdir()}


def _refused(cfg_overrides: list[str], out: Path) -> str:
    with pytest.raises(Exception) as err:
        evaluate(eval_cfg(*cfg_overrides, f"output_dir={out}"))
    cause = user_error(err.value)
    assert cause is not None, err.value
    assert not out.exists()
    return str(cause)


def test_a_missing_checkpoint_is_refused(tmp_path):
    assert "no such checkpoint" in _refused([f"ckpt_path={tmp_path / 'none.ckpt'}"], tmp_path / "out")


def test_a_corrupt_checkpoint_is_refused(tmp_path, checkpoint):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(checkpoint.read_bytes()[:5000])
    assert "not a readable checkpoint" in _refused([f"ckpt_path={bad}"], tmp_path / "out")


def test_a_foreign_checkpoint_is_refused(tmp_path):
    foreign = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, foreign)
    assert "not a facevae checkpoint" in _refused([f"ckpt_path={foreign}"], tmp_path / "out")


def test_data_that_no_longer_matches_the_checkpoint_is_refused(tmp_path, checkpoint, demo_clip):
    message = _refused(
        [f"ckpt_path={checkpoint}", f"data.video={demo_clip}", f"data.cache_dir={tmp_path / 'c'}"], tmp_path / "out"
    )
    assert "no longer matches" in message


def test_a_smiles_path_without_a_face_is_refused(tmp_path, checkpoint):
    from test_extract import _write_blank_video

    blank = _write_blank_video(tmp_path / "blank.mp4")
    message = _refused(
        [f"ckpt_path={checkpoint}", f"smiles={blank}", f"data.cache_dir={tmp_path / 'c'}"], tmp_path / "out"
    )
    assert "no face found" in message and str(blank) in message


def test_the_command_line_prints_the_output_dir_last_and_fails_in_one_line(checkpoint, tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "WANDB_MODE": "offline"}
        command = [sys.executable, str(ROOT / "evaluate.py"), *args]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)

    bad = run(f"ckpt_path={tmp_path / 'x.ckpt'}")
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "no such checkpoint" in bad.stderr
    ok = run(f"ckpt_path={checkpoint}", f"output_dir={tmp_path / 'cli'}", "n_samples=1000", "shift_frames=8")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert Path(ok.stdout.strip().splitlines()[-1]) == tmp_path / "cli"
    assert list((tmp_path / "cli").glob("wandb/offline-run-*"))  # logged beside the training run, offline


def test_evaluation_psnr_is_the_psnr_train_py_logs_for_the_same_frames(checkpoint):
    from torchmetrics.image import PeakSignalNoiseRatio

    from facevae.core.tensors import to_float_images
    from facevae.metrics.reconstruction import reconstruction_scores
    from facevae.models.inference import reconstruction_terms

    run = load_run(checkpoint)
    test = datamodule_for(run).images("test")
    logged = PeakSignalNoiseRatio(data_range=1.0)  # what BetaVAEModule logs as test/psnr, batch by batch
    for start in range(0, len(test), 7):
        x = to_float_images(torch.from_numpy(np.array(test[start : start + 7])))
        with torch.no_grad():
            logged.update(run.model.reconstruct(x).clamp(0, 1), x)
    ours = reconstruction_scores(reconstruction_terms(run.model, test)).metrics()
    assert ours["psnr"] == pytest.approx(float(logged.compute()), abs=1e-3)
    assert ours["psnr_frame_mean"] != pytest.approx(ours["psnr"], abs=1e-3)  # the other number has its own name


def mean_brightness(ev, scale: float = 1.0) -> dict:
    """A user's own analysis, named by `_target_` from the command line: a number of the test frames."""
    return {"mean_test_brightness": scale * float(ev.test.mean())}


def test_one_analysis_alone_runs_and_writes_only_its_figure(checkpoint, tmp_path):
    metrics, out = evaluate(eval_cfg(f"ckpt_path={checkpoint}", f"output_dir={tmp_path}", "analysis=[traversals]"))
    assert "traversal_pixel_change" in metrics and "psnr" not in metrics and "sample_face_rate" not in metrics
    assert {p.name for p in out.glob("*.png")} == {"traversals.png"}


def test_an_analysis_left_out_is_not_run_and_the_others_do_without_it(checkpoint, tmp_path):
    """Traversals order the latents by the reconstruction's KL; without it, by the same KL of the test codes."""
    cfg = eval_cfg(
        f"ckpt_path={checkpoint}",
        f"output_dir={tmp_path}",
        "analysis=[reconstruction,traversals]",
        "~analysis.reconstruction",
    )
    metrics, out = evaluate(cfg)
    assert "psnr" not in metrics and not (out / "reconstruction.png").exists()
    both, _ = evaluate(
        eval_cfg(f"ckpt_path={checkpoint}", f"output_dir={tmp_path / 'b'}", "analysis=[reconstruction,traversals]")
    )
    assert metrics["order"] == both["order"]
    np.testing.assert_allclose(metrics["traversal_kl"], both["traversal_kl"], rtol=1e-4)


def test_a_users_own_analysis_runs_with_its_settings(checkpoint, tmp_path):
    cfg = eval_cfg(
        f"ckpt_path={checkpoint}",
        f"output_dir={tmp_path}",
        "analysis=[traversals]",
        "+analysis.mine._target_=test_evaluate.mean_brightness",
        "+analysis.mine.scale=2",
    )
    metrics, out = evaluate(cfg)
    test = datamodule_for(load_run(checkpoint)).images("test")
    assert metrics["mean_test_brightness"] == pytest.approx(2 * float(test.mean()))
    assert json.loads((out / "metrics.json").read_text())["mean_test_brightness"] == metrics["mean_test_brightness"]


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("+analysis.mine._target_=no.such.analysis", "analysis.mine._target_=no.such.analysis"),
        ("+analysis.mine._target_=test_evaluate.mean_brightness", None),
        ("analysis.traversals.rows=0", "analysis.traversals.rows=0"),
        ("+analysis.traversals.colour=red", "colour"),
    ],
)
def test_a_bad_analysis_is_refused_in_one_line_before_any_work(checkpoint, tmp_path, override, named):
    extra = ["+analysis.mine.bogus=1"] if named is None else []
    cfg = eval_cfg(f"ckpt_path={checkpoint}", f"output_dir={tmp_path / 'out'}", override, *extra)
    with pytest.raises(Exception) as err:
        evaluate(cfg)
    assert user_error(err.value) is not None
    message = str(user_error(err.value))
    assert "\n" not in message and (named or "bogus") in message
    assert not (tmp_path / "out").exists()  # refused before the output folder was made


def test_an_unknown_analysis_name_is_one_line_from_the_command_line(tmp_path, checkpoint):
    command = [sys.executable, str(ROOT / "evaluate.py"), f"ckpt_path={checkpoint}", "analysis=[reconstruction,bogus]"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: ") and "analysis/bogus" in done.stderr


def test_the_printed_scores_stand_beside_their_references():
    from facevae.evaluation.run import summary_lines

    lines = summary_lines({"sample_recall": 0.03, "sample_recall_real": 0.69, "smile_auc": 0.78, "mig": 0.1})
    assert lines[0].split() == ["sample_recall", "0.03", "(real-vs-real", "0.69)"]
    assert lines[1].endswith("(chance 0.5)") and lines[2].split() == ["mig", "0.1"]
