"""`FaceCropDataModule`: the crop cache as train/val/test batches of uint8 images, split by blocks of time.

With `on_device` (the default) the whole cache sits on the training device as one uint8 tensor (177 MB for the seed's
14,400 crops) and loaders hand out cache rows only: each batch is one gather on the device, with nothing copied from
the host but the indices. On CPU the "device copy" is the cache itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from facevae.core import rules
from facevae.core.errors import require
from facevae.data import split as splitting
from facevae.data.align import AlignParams
from facevae.data.cache import FaceCrops, load_cache
from facevae.data.extract import ExtractionParams, ExtractionResult, format_summary, prepare_cache
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


class FaceCropDataModule(pl.LightningDataModule):
    """Face crops of one person from a video or an image folder; the built-in demo video when `video` is None."""

    def __init__(
        self,
        video: str | None = None,
        demo_video: str = "data/demo/clip.mp4",
        demo_seconds: float = 180.0,
        cache_dir: str = "data/cache",
        fps: float = 8.0,
        size: int = 64,
        crop_scale: float = 0.8,
        crop_shift_y: float = 0.08,
        detect_width: int = 320,
        min_face: float = 0.12,
        align: str = "none",
        align_smooth_s: float = 0.2,
        block_s: float | None = None,
        gap_s: float | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        on_device: bool | str = "auto",
        progress: bool = True,
    ):
        super().__init__()
        self.check_settings({k: v for k, v in locals().items() if k not in ("self", "__class__")})
        self.save_hyperparameters()
        self.params = ExtractionParams(
            fps=fps,
            size=size,
            crop=CropParams(scale=crop_scale, shift_y=crop_shift_y),
            detector=DetectorParams(detect_width=detect_width, min_face=min_face),
            align=AlignParams(method=align, smooth_s=align_smooth_s),
        )
        self.data: FaceCrops | None = None
        self.labels: np.ndarray | None = None  # 0 train, 1 val, 2 test, -1 gap; one per crop
        self._recorded_split: dict | None = None
        self._device_crops: dict[str, torch.Tensor] = {}  # the cache on each device batches went to, by name
        self._order_seed = 0  # seeds the training batches' permutations; set by setup

    @staticmethod
    def check_settings(values: dict, prefix: str = "data") -> None:
        """Every value of the data config, before any video is read (facevae.validation runs this for each command)."""
        v = rules.with_defaults(FaceCropDataModule.__init__, values)
        for key in ("video", "demo_video", "cache_dir"):
            rules.text(f"{prefix}.{key}", v[key], optional=key == "video")
        # A demo of a few seconds cannot be split into blocks; one of hours takes as long to make and to extract.
        rules.number(f"{prefix}.demo_seconds", v["demo_seconds"], 10, 7200, why=" seconds")
        ExtractionParams.check_settings(v, prefix)
        splitting.check_settings(v, prefix)
        rules.whole(f"{prefix}.split_seed", v["split_seed"], 0, 2**32 - 1)
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
        rules.flag(f"{prefix}.progress", v["progress"])

    @property
    def on_device(self) -> bool:
        """Whether batches are gathered on the training device: "auto" does so unless loader workers are asked for."""
        setting = self.hparams.on_device
        return self.hparams.num_workers == 0 if setting == "auto" else bool(setting)

    # -- where the data comes from -----------------------------------------------------------------------------
    @property
    def source(self) -> Path:
        return Path(self.hparams.video if self.hparams.video else self.hparams.demo_video).expanduser()

    def prepare_data(self) -> None:
        """Make the demo video and extract the cache when missing (Lightning calls this once per node)."""
        result = self.prepare_cache()
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
        hp, times = self.hparams, self.data.frames["time_s"].to_numpy()
        block_s, gap_s = splitting.block_and_gap(times, hp.block_s, hp.gap_s, hp.val_fraction, hp.test_fraction)
        self.labels = splitting.time_block_split(
            times, block_s, gap_s, hp.val_fraction, hp.test_fraction, hp.split_seed
        )
        given = "" if hp.block_s is not None else f" (data.block_s chosen for {splitting.duration_s(times):.0f} s)"
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
        sampler = EpochBatches(len(rows), self.hparams.batch_size, self._order_seed, rank, world, epoch_of)
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
        return self._loader(
            rows, BatchSampler(SequentialSampler(range(len(rows))), self.hparams.eval_batch_size, False)
        )

    def _loader(self, rows: np.ndarray, sampler: Sampler) -> DataLoader:
        workers = 0 if self.on_device else self.hparams.num_workers
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
