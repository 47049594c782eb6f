"""`FaceCropDataModule`: the crop cache as train/val/test batches of uint8 images, split by blocks of time.

With `on_device` (the default) the whole cache sits on the training device as one uint8 tensor (177 MB for the seed's
14,400 crops) and loaders hand out cache rows only: each batch is one gather on the device, with nothing copied from
the host but the indices. On CPU the "device copy" is the cache itself.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from facevae.core import rules
from facevae.core.errors import require
from facevae.data import split as splitting
from facevae.data.align import AlignParams
from facevae.data.cache import FaceCrops, load_cache
from facevae.data.extract import SIZE_RANGE, ExtractionParams, ExtractionResult, format_summary, prepare_cache
from facevae.data.faces import CropParams, DetectorParams
from facevae.data.synthetic import write_demo_video

log = logging.getLogger(__name__)


class CropBatches(Dataset):
    """Whole batches by fancy indexing: one numpy gather per batch instead of a Python call per image.

    Items are dicts of `image` (B x H x W x 3 uint8, channels last as stored) and `index` (B, row in the cache);
    conversion to float happens on the training device, so host memory and transfers stay 4x smaller.
    """

    def __init__(self, crops: np.ndarray, rows: np.ndarray):
        self.crops = crops
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        rows = self.rows[np.asarray(positions)]
        return {"image": torch.from_numpy(self.crops[rows]), "index": torch.from_numpy(rows)}


class RowBatches(Dataset):
    """Batches of cache rows alone, `{"index": B}`: FaceCropDataModule.transfer_batch_to_device adds the crops,
    gathered where the cache already is, on the training device."""

    def __init__(self, rows: np.ndarray):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        return {"index": torch.from_numpy(self.rows[np.asarray(positions)])}


class EpochBatches(Sampler):
    """Training batches from one permutation per epoch, the same on every process; each process takes its share.

    The permutation is seeded by (seed, epoch) alone, never by the global RNG, which callbacks on rank zero also
    draw from: so data-parallel processes agree on it and take disjoint batches, and a resumed run continues with
    the permutations it would have seen. Every process gets the same number of batches, as DDP requires.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        epoch_of: Callable[[], int] | None = None,
    ):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        # Where the epoch is read from when an epoch's first batch is drawn (the trainer's count): Lightning makes the
        # loader's iterator before it calls set_epoch, and on a resume it would hand out the permutation of epoch 0.
        self.epoch_of = epoch_of
        # Static batch shapes: drop the ragged last batch, unless the set is smaller than one batch.
        self.drop_last = n >= batch_size * world_size

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this before each training epoch
        self.epoch = epoch

    def __len__(self) -> int:
        batches = self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)
        return max(1, batches // self.world_size) if self.drop_last else batches

    def __iter__(self):
        # A generator: the permutation is drawn at the epoch's first batch, when its number is known.
        epoch = self.epoch_of() if self.epoch_of is not None else self.epoch
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(self.n, generator=generator).tolist()
        batches = [order[i : i + self.batch_size] for i in range(0, self.n, self.batch_size)]
        if not self.drop_last:  # a set smaller than a batch per process: every process trains on all of it
            yield from batches
            return
        batches = batches[: len(self) * self.world_size]  # whole batches, the same count for every process
        yield from batches[self.rank :: self.world_size]


# The data config's groups and the settings in each. A config (or a checkpoint's record of one) from before the
# groups names the same settings flat, beside `video` (`fps=`, `batch_size=`, `split_seed=`): FLAT says where each
# went.
GROUPS: dict[str, tuple[str, ...]] = {
    "extraction": ("fps", "crop_scale", "crop_shift_y", "detect_width", "min_face", "align", "align_smooth_s"),
    "split": ("block_s", "gap_s", "val_fraction", "test_fraction", "seed"),
    "loader": ("batch_size", "eval_batch_size", "num_workers", "on_device"),
}
FLAT = {key: (group, key) for group, keys in GROUPS.items() for key in keys if key != "seed"}
FLAT["split_seed"] = ("split", "seed")


@dataclass(frozen=True)
class ExtractionSettings:
    """How crops are cut from each frame (`data.extraction`); every one is part of the cache key, with `data.size`.
    Without `align` the crops are the face box's upright square, as before alignment existed."""

    fps: float = 8.0
    crop_scale: float = 0.8
    crop_shift_y: float = 0.08
    detect_width: int = 320
    min_face: float = 0.12
    align: str = "none"
    align_smooth_s: float = 0.2

    def params(self, size: int) -> ExtractionParams:
        return ExtractionParams(
            fps=self.fps,
            size=size,
            crop=CropParams(scale=self.crop_scale, shift_y=self.crop_shift_y),
            detector=DetectorParams(detect_width=self.detect_width, min_face=self.min_face),
            align=AlignParams(method=self.align, smooth_s=self.align_smooth_s),
        )


@dataclass(frozen=True)
class SplitSettings:
    """The split by blocks of time (`data.split`): block and gap seconds (None: from the duration), the shares held
    out, and the seed that picks the held-out blocks."""

    block_s: float | None = None
    gap_s: float | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class LoaderSettings:
    """How batches are made (`data.loader`): their sizes, loader workers, and whether the cache sits on the training
    device ("auto": when there are no workers)."""

    batch_size: int = 64
    eval_batch_size: int = 256
    num_workers: int = 0
    on_device: bool | str = "auto"


SETTINGS = {"extraction": ExtractionSettings, "split": SplitSettings, "loader": LoaderSettings}


class FaceCropDataModule(pl.LightningDataModule):
    """Face crops of one person from a video or an image folder; the built-in demo video when `video` is None.

    Its arguments are the data config's: where the video and the cache are, the crops' `size`, and one group each
    for `extraction`, `split` and `loader` (mappings of the settings in ExtractionSettings, SplitSettings and
    LoaderSettings; a setting left out keeps its default). `flat` takes the settings of a config from before the
    groups (`fps=8, batch_size=64, split_seed=0, ...`), as older checkpoints record it: each goes into its group.
    """

    def __init__(
        self,
        video: str | None = None,
        demo_video: str = "data/demo/clip.mp4",
        demo_seconds: float = 180.0,
        cache_dir: str = "data/cache",
        size: int = 64,
        extraction: Mapping[str, Any] | None = None,
        split: Mapping[str, Any] | None = None,
        loader: Mapping[str, Any] | None = None,
        progress: bool = True,
        **flat: Any,
    ):
        super().__init__()
        given = {k: v for k, v in locals().items() if k not in ("self", "__class__", "flat")}
        settings = FaceCropDataModule.grouped({**given, **flat})
        self.check_settings(settings)
        self.save_hyperparameters(settings)
        self.extraction = ExtractionSettings(**settings["extraction"])
        self.split = SplitSettings(**settings["split"])
        self.loader = LoaderSettings(**settings["loader"])
        self.params = self.extraction.params(size)
        self.data: FaceCrops | None = None
        self._prepared: Path | None = None  # the cache prepare_data last reported
        self.labels: np.ndarray | None = None  # 0 train, 1 val, 2 test, -1 gap; one per crop
        self._recorded_split: dict | None = None
        self._device_crops: dict[str, torch.Tensor] = {}  # the cache on each device batches went to, by name
        self._order_seed = 0  # seeds the training batches' permutations; set by setup

    @staticmethod
    def grouped(values: Mapping[str, Any]) -> dict[str, Any]:
        """A data config's values (grouped, flat, or both) as the groups, each with every setting: the defaults
        under what is given, a flat setting over its group's. Keys it does not know are kept, for the check to name."""
        out = dict(values)
        groups = {name: out.pop(name, None) or {} for name in GROUPS}
        for name, given in groups.items():
            require(isinstance(given, Mapping), f"data.{name}={rules.shown(given)}: must be a group of settings")
        groups = {name: dict(given) for name, given in groups.items()}
        for key in [k for k in out if k in FLAT]:
            group, name = FLAT[key]
            groups[group][name] = out.pop(key)
        defaults = rules.with_defaults(FaceCropDataModule.__init__, {})
        top = {k: v for k, v in defaults.items() if k not in GROUPS and k != "flat"}
        for name, cls in SETTINGS.items():
            out[name] = {**dataclasses.asdict(cls()), **groups[name]}
        return {**top, **out}

    @staticmethod
    def check_settings(values: dict, prefix: str = "data") -> None:
        """Every value of the data config, before any video is read (facevae.validation runs this for each command)."""
        v = FaceCropDataModule.grouped(values)
        arguments = [name for name in inspect.signature(FaceCropDataModule.__init__).parameters if name != "flat"]
        rules.known_names(prefix, v, arguments, "FaceCropDataModule")
        for name, cls in SETTINGS.items():
            rules.known_keys(f"{prefix}.{name}", v[name], cls.__init__, cls.__name__)
        for key in ("video", "demo_video", "cache_dir"):
            rules.text(f"{prefix}.{key}", v[key], optional=key == "video")
        # A demo of a few seconds cannot be split into blocks; one of hours takes as long to make and to extract.
        rules.number(f"{prefix}.demo_seconds", v["demo_seconds"], 10, 7200, why=" seconds")
        rules.whole(f"{prefix}.size", v["size"], *SIZE_RANGE, why=" pixels")
        ExtractionParams.check_settings(v["extraction"], f"{prefix}.extraction")
        splitting.check_settings(v["split"], f"{prefix}.split")
        rules.whole(f"{prefix}.split.seed", v["split"]["seed"], 0, 2**32 - 1)
        _check_loader(v["loader"], f"{prefix}.loader")
        rules.flag(f"{prefix}.progress", v["progress"])

    @property
    def on_device(self) -> bool:
        """Whether batches are gathered on the training device: "auto" does so unless loader workers are asked for."""
        setting = self.loader.on_device
        return self.loader.num_workers == 0 if setting == "auto" else bool(setting)

    # -- where the data comes from -----------------------------------------------------------------------------
    @property
    def source(self) -> Path:
        return Path(self.hparams.video if self.hparams.video else self.hparams.demo_video).expanduser()

    def prepare_data(self) -> None:
        """Make the demo video and extract the cache when missing (Lightning calls this once per node; train.py
        calls it first, before the loggers start: the second call says nothing new)."""
        result = self.prepare_cache()
        if result.path == self._prepared:
            return
        self._prepared = result.path
        verb = "reusing" if result.reused else "built"
        log.info("%s crop cache %s (%s)", verb, result.path, format_summary(result.summary))

    def prepare_cache(self) -> ExtractionResult:
        if not self.hparams.video and not self.source.exists():
            log.info("making the built-in demo video at %s", self.source)
            write_demo_video(self.source, seconds=self.hparams.demo_seconds)
        return prepare_cache(self.source, self.hparams.cache_dir, self.params, progress=self.hparams.progress)

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        # After seed_everything(seed), torch's initial seed is that seed: the permutations follow the run's seed. Read
        # here, once: facevae.callbacks.StepSeeds reseeds torch at every step, and a loader made later must agree.
        self._order_seed = torch.initial_seed() % 2**31
        # mmap=False: the whole cache (177 MB for a half-hour video) in memory makes each batch one gather.
        self.data = load_cache(self.prepare_cache().path, mmap=False)
        frames = self.data.frames["frame"].to_numpy()
        if self._recorded_split is not None:
            self.labels = splitting.labels_from_ranges(frames, self._recorded_split)
            log.info("split as recorded in the checkpoint: %s", splitting.describe(self.labels))
            return
        sp, times = self.split, self.data.frames["time_s"].to_numpy()
        block_s, gap_s = splitting.block_and_gap(times, sp.block_s, sp.gap_s, sp.val_fraction, sp.test_fraction)
        self.labels = splitting.time_block_split(times, block_s, gap_s, sp.val_fraction, sp.test_fraction, sp.seed)
        chosen = f" (data.split.block_s chosen for {splitting.duration_s(times):.0f} s)"
        given = "" if sp.block_s is not None else chosen
        log.info("split by %.3g s blocks%s, %.3g s gaps: %s", block_s, given, gap_s, splitting.describe(self.labels))
        splitting.require_training_frames(self.labels, gap_s)
        splitting.warn_if_little_training(self.labels, block_s, gap_s)

    # -- the split, recorded in checkpoints so evaluation reuses it ----------------------------------------------
    def split_ranges(self) -> dict[str, list[list[int]]]:
        return splitting.frame_ranges(self.data.frames["frame"].to_numpy(), self.labels)

    def state_dict(self) -> dict:
        if self.data is None:
            return {}
        return {
            "split": self.split_ranges(),
            "cache_key": self.data.manifest["key"],
            "source": self.data.manifest["source"],
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("split"):
            self._recorded_split = state["split"]
            if self.data is not None:
                self.labels = splitting.labels_from_ranges(self.data.frames["frame"].to_numpy(), state["split"])
        key = state.get("cache_key")
        if key is not None and self.data is not None:  # a resume: its split's frames must be these crops' frames
            require(
                key == self.data.manifest["key"],
                f"{self.source}: not the crops the checkpoint trained on (crop cache {self.data.manifest['key']}, "
                f"trained on {key} from {state.get('source')}); resume with the data it was trained on",
            )

    # -- access for callbacks and analyses -----------------------------------------------------------------------
    def rows(self, split: str) -> np.ndarray:
        """Cache rows of a split, in time order."""
        return np.flatnonzero(self.labels == splitting.SPLITS.index(split))

    def images(self, split: str) -> np.ndarray:
        return self.data.crops[self.rows(split)]

    @property
    def factor_names(self) -> list[str]:
        return self.data.factor_names if self.data is not None else []

    def factors(self, split: str) -> np.ndarray | None:
        values = self.data.factors()
        return None if values is None else values[self.rows(split)]

    # -- loaders -------------------------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        rows = self.rows("train")
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        epoch_of = self._current_epoch if trainer is not None else None
        sampler = EpochBatches(len(rows), self.loader.batch_size, self._order_seed, rank, world, epoch_of)
        return self._loader(rows, sampler)

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def _eval_loader(self, split: str) -> DataLoader:
        # Under DDP every process evaluates the whole (small) split, so the synced means are exact.
        rows = self.rows(split)
        return self._loader(rows, BatchSampler(SequentialSampler(range(len(rows))), self.loader.eval_batch_size, False))

    def _loader(self, rows: np.ndarray, sampler: Sampler) -> DataLoader:
        workers = 0 if self.on_device else self.loader.num_workers
        return DataLoader(
            RowBatches(rows) if self.on_device else CropBatches(self.data.crops, rows),
            sampler=sampler,
            batch_size=None,
            num_workers=workers,
            persistent_workers=workers > 0,
            # Pinned, the copy to the GPU is asynchronous: the host never waits for it.
            pin_memory=torch.cuda.is_available(),
        )

    # -- batches on the device -----------------------------------------------------------------------------------
    def transfer_batch_to_device(self, batch: dict, device: torch.device, dataloader_idx: int) -> dict:
        """Lightning's copy to the device; a batch of rows alone gets its crops by one gather there."""
        batch = super().transfer_batch_to_device(batch, device, dataloader_idx)
        if isinstance(batch, dict) and "image" not in batch and "index" in batch:
            batch = {**batch, "image": self.crops_on(device).index_select(0, batch["index"])}
        return batch

    def crops_on(self, device: torch.device | str) -> torch.Tensor:
        """The whole crop cache as one uint8 N x H x W x 3 tensor on `device`, copied there once (on the CPU: the
        cache itself, no copy)."""
        key = str(device)
        if key not in self._device_crops:
            self._device_crops[key] = torch.from_numpy(self.data.crops).to(device)
        return self._device_crops[key]

    def teardown(self, stage: str | None = None) -> None:
        self._device_crops.clear()  # gives the device its memory back after fit or test


def _check_loader(v: Mapping[str, Any], prefix: str) -> None:
    # Batches larger than the data are one batch of all of it (EpochBatches); there is no upper bound to set.
    rules.whole(f"{prefix}.batch_size", v["batch_size"], lo=1)
    rules.whole(f"{prefix}.eval_batch_size", v["eval_batch_size"], lo=1)
    cores = os.cpu_count() or 1
    rules.whole(f"{prefix}.num_workers", v["num_workers"], 0, cores, why=f" (this machine has {cores} CPU cores)")
    rules.choice(f"{prefix}.on_device", v["on_device"], ("auto", True, False))
    require(
        not (v["on_device"] is True and v["num_workers"] > 0),
        f"{prefix}.on_device=true gathers batches on the training device, in this process: "
        f"{prefix}.num_workers={v['num_workers']} would have nothing to do "
        f"(set it to 0, or {prefix}.on_device=false)",
    )
