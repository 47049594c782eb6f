"""`python -m facevae.bench SECTION`: how fast the pipeline runs on this machine, printed as a markdown table.

    python -m facevae.bench extraction [--video PATH] [--seconds 300] [--repeat 1]
    python -m facevae.bench train [--batch-sizes 64 1024] [--steps 20] [--epochs 4]

`extraction` times, on a 720p 30 fps demo video (made once under data/bench/, or the video given), decoding every
frame with PyAV and with OpenCV, reading the kept frames alone, and the whole extraction (detection and cropping)
with and without skipping the frames that are neither kept nor referenced. The requirement it checks: extraction
at 20x realtime or more on a 5-minute video.

`train` times one model three ways: (a) a bare PyTorch loop over crops in memory, (c) the full train.py loop on the
demo data as configured (W&B offline, every callback), training batches alone and the whole fit, (d) the
DataLoader-from-numpy pipeline common VAE repositories use. The requirement it checks: the train.py loop loses no
more than 10% to data loading and logging. Each section is a `bench_<name>(args)` function with its subparser.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from facevae.data import video
from facevae.data.extract import ExtractionParams, extract_crops
from facevae.data.synthetic import write_demo_video
from facevae.errors import FaceVAEError, exit_on_error

log = logging.getLogger(__name__)

BENCH_DIR = Path("data/bench")


@dataclass
class Timing:
    step: str
    frames: str  # what was decoded, as words: "9000", "5200 (3800 skipped)"
    wall_s: float
    cpu_s: float  # all threads of this process: FFmpeg's and OpenCV's worker threads too
    faces: str = ""


def timed(step: str, run: Callable[[], tuple[str, str]], repeat: int) -> Timing:
    """The fastest of `repeat` runs: other load on the machine only ever slows a run down."""
    best = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        frames, faces = run()
        timing = Timing(step, frames, time.perf_counter() - wall, time.process_time() - cpu, faces)
        if best is None or timing.wall_s < best.wall_s:
            best = timing
    return best


# -- extraction ----------------------------------------------------------------------------------------------------


def bench_extraction(args: argparse.Namespace) -> None:
    path = args.video or _demo_video(args.seconds)
    duration = video.probe_video(path).duration_s
    hardware = _hardware()
    log.info("timing %s (%.0f s), best of %d", path, duration, args.repeat)
    timings = [
        timed("decode every frame, PyAV", lambda: (str(_decode_pyav(path)), ""), args.repeat),
        timed("decode every frame, OpenCV `VideoCapture.grab`", lambda: (str(_grab_opencv(path)), ""), args.repeat),
        timed("kept frames only, `iter_video_frames`", lambda: _read_kept(path), args.repeat),
        timed("extraction, decoding every frame", lambda: _extract(path, skip=False), args.repeat),
        timed("extraction, skipping unneeded frames", lambda: _extract(path, skip=True), args.repeat),
    ]
    print(f"{path}: {duration:.0f} s of video, best of {args.repeat}; {hardware}")
    print()
    print("| step | frames decoded | wall s | CPU s | x realtime | faces accepted / kept |")
    print("|---|---:|---:|---:|---:|---:|")
    for t in timings:
        print(f"| {t.step} | {t.frames} | {t.wall_s:.2f} | {t.cpu_s:.2f} | {duration / t.wall_s:.1f} | {t.faces} |")


def _demo_video(seconds: float) -> Path:
    """The 720p 30 fps demo video of this length, made on first use and kept for later runs."""
    path = BENCH_DIR / f"clip-{seconds:g}s.mp4"
    if not path.exists():
        log.info("making a %g s demo video at %s (once; later runs reuse it)", seconds, path)
        write_demo_video(path, seconds=seconds, progress=True)
    return path


def _decode_pyav(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # as iter_video_frames decodes
        return sum(1 for _ in container.decode(stream))


def _grab_opencv(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FaceVAEError(f"{path}: OpenCV cannot open the video")
    frames = 0
    while capture.grab():  # decodes without converting to BGR
        frames += 1
    capture.release()
    return frames


def _read_kept(path: Path) -> tuple[str, str]:
    counts: dict[str, int] = {}
    kept = sum(1 for _ in video.iter_video_frames(path, ExtractionParams().fps, counts, skip_unneeded=True))
    return f"{counts['decoded']} ({counts['skipped']} skipped)", f"- / {kept}"


def _extract(path: Path, skip: bool) -> tuple[str, str]:
    # extract_crops reads the video through iter_video_frames' default, the module's switch.
    saved, video.SKIP_UNNEEDED = video.SKIP_UNNEEDED, skip
    try:
        _, _, summary = extract_crops(path, ExtractionParams(), progress=False)
    finally:
        video.SKIP_UNNEEDED = saved
    return str(summary["decoded"]), f"{summary['accepted']} / {summary['kept']}"


def _hardware() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = names[0] if names else cpu
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = f"1-min load {os.getloadavg()[0]:.2f} before timing"  # other processes on the cores slow every step
    versions = {
        "python": platform.python_version(),
        "torch": _version("torch"),
        "opencv": cv2.__version__,
        "av": av.__version__,
        "numpy": np.__version__,
    }
    return f"{cpu}, {cores} cores, {load}; " + ", ".join(f"{k} {v}" for k, v in versions.items())


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)  # without importing it: torch takes seconds to import
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# -- entry point ---------------------------------------------------------------------------------------------------


# -- training ------------------------------------------------------------------------------------------------------


@dataclass
class Throughput:
    loop: str
    batch: int
    images_per_s: float
    note: str = ""


def bench_train(args: argparse.Namespace) -> None:
    """Images/s of a bare PyTorch loop, the full train.py loop and a DataLoader-from-numpy loop, same model."""
    import torch

    torch.manual_seed(0)
    crops = _training_crops()
    rows: list[Throughput] = []
    for batch in args.batch_sizes:
        bare = _bare_loop(crops, batch, args.steps)
        rows.append(Throughput("(a) bare eager step, data in memory", batch, bare))
        full, steady = _train_py_loop(batch, args.epochs)
        rows.append(
            Throughput("(c) train.py loop, training batches only", batch, steady, f"{100 * steady / bare:.0f}% of bare")
        )
        rows.append(
            Throughput(
                "(c) train.py fit incl. validation, grids, logging", batch, full, f"{100 * full / bare:.0f}% of bare"
            )
        )
        loader = _dataloader_loop(crops, batch, args.steps)
        rows.append(
            Throughput("(d) DataLoader from numpy, 2 workers", batch, loader, f"{100 * loader / bare:.0f}% of bare")
        )
    print(f"\n{_hardware()}, torch threads {torch.get_num_threads()}\n")
    print("| loop | batch | images/s | |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r.loop} | {r.batch} | {r.images_per_s:,.0f} | {r.note} |")


def _training_crops(n: int = 4096) -> np.ndarray:
    """The demo cache's crops when there is one (make data), else random uint8 crops of the same shape."""
    caches = sorted(Path("data/cache").glob("clip-*/crops.npy"))
    if caches:
        return np.load(caches[0])
    return np.random.default_rng(0).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def _step(x, model, optimizer) -> None:
    """One step of the default objective (beta 1, sigma 0.1): forward, loss, backward, Adam."""
    from facevae.models.objectives import beta_vae_loss

    x_mean, mu, logvar, _ = model(x)
    loss = beta_vae_loss(x, x_mean, mu, logvar, math.log(0.1), beta=1.0).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _bare_loop(crops: np.ndarray, batch: int, steps: int, warmup: int = 3) -> float:
    """The floor to compare with: index the in-memory uint8 array, convert, forward, backward, Adam."""
    import torch

    from facevae.models import BetaVAE
    from facevae.models.lit_beta_vae import to_float_images

    model = BetaVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    data = torch.from_numpy(crops)
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        idx = torch.randint(0, len(data), (batch,))
        _step(to_float_images(data[idx]), model, optimizer)
    return batch * steps / (time.perf_counter() - start)


def _dataloader_loop(crops: np.ndarray, batch: int, steps: int, warmup: int = 3) -> float:
    """What common VAE repositories do: a per-item Dataset over numpy, a shuffling DataLoader with workers."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    from facevae.models import BetaVAE

    class Items(Dataset):
        def __len__(self) -> int:
            return len(crops)

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.from_numpy(crops[i]).permute(2, 0, 1).float() / 255.0

    model = BetaVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loader = DataLoader(Items(), batch_size=batch, shuffle=True, drop_last=True, num_workers=2, persistent_workers=True)
    done, start = 0, None
    while done < warmup + steps:
        for x in loader:
            if done == warmup:
                start = time.perf_counter()
            _step(x, model, optimizer)
            done += 1
            if done == warmup + steps:
                break
    return batch * steps / (time.perf_counter() - start)


def _train_py_loop(batch: int, epochs: int) -> tuple[float, float]:
    """train.py's own code path on the demo data as configured (W&B offline, every callback).

    Returns the images/s of the whole fit (validation, grids and latent analyses included) and of the training
    batches alone in the epochs after the first (which pays one-time costs).
    """
    import tempfile

    import pytorch_lightning as pl
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from facevae import training
    from facevae.config import CONF_DIR

    class Clock(pl.Callback):
        def __init__(self):
            self.train_s, self.images, self.epoch_start, self.fit_s = [], 0, 0.0, 0.0

        def on_fit_start(self, trainer, pl_module):
            self.fit_s = time.perf_counter()

        def on_fit_end(self, trainer, pl_module):
            self.fit_s = time.perf_counter() - self.fit_s

        def on_train_epoch_start(self, trainer, pl_module):
            self.epoch_start = time.perf_counter()
            self.images = 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.images += len(batch["image"])

        def on_train_epoch_end(self, trainer, pl_module):
            self.train_s.append((self.images, time.perf_counter() - self.epoch_start))

    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "train",
                overrides=[
                    f"trainer.max_epochs={epochs}",
                    f"data.batch_size={batch}",
                    "test=false",
                    "trainer.enable_progress_bar=false",
                    "data.progress=false",
                ],
            )
        with open_dict(cfg):
            cfg.paths.output_dir = out
        real = training.instantiate_group
        training.instantiate_group = lambda group: real(group) + ([clock] if group is cfg.get("callbacks") else [])
        os.environ.setdefault("WANDB_MODE", "offline")
        try:
            training.train(cfg)
        finally:
            training.instantiate_group = real
    images = sum(n for n, _ in clock.train_s)
    steady = clock.train_s[1:] or clock.train_s
    return images / clock.fit_s, sum(n for n, _ in steady) / sum(s for _, s in steady)


@exit_on_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m facevae.bench", description="Time a part of the pipeline and print a markdown table."
    )
    sections = parser.add_subparsers(dest="section", required=True, metavar="SECTION")
    extraction = sections.add_parser("extraction", help="decoding and face extraction on a 720p 30 fps video")
    extraction.add_argument("--video", type=Path, help="time this video instead of the demo one")
    extraction.add_argument("--seconds", type=float, default=300.0, help="length of the demo video to make or reuse")
    extraction.add_argument("--repeat", type=int, default=1, help="runs of each step; the fastest is reported")
    extraction.set_defaults(run=bench_extraction)
    train = sections.add_parser("train", help="images/s of train.py's loop against a bare loop and a DataLoader")
    train.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 1024])
    train.add_argument("--steps", type=int, default=20, help="timed steps of the bare and DataLoader loops")
    train.add_argument("--epochs", type=int, default=10, help="epochs of the train.py loop on the demo data")
    train.set_defaults(run=bench_train)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.run(args)


if __name__ == "__main__":
    main()
