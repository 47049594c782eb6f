"""FaceCropDataModule: uint8 batches from the cache, split by time, factors exposed, the split recorded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facevae.core.errors import FaceVAEError
from facevae.data import cache
from facevae.data.datamodule import EpochBatches, FaceCropDataModule

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def datamodule(long_clip, tmp_path_factory):
    dm = FaceCropDataModule(
        video=str(long_clip),
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        split={"block_s": 1.0, "gap_s": 0.25},
        loader={"batch_size": 8, "eval_batch_size": 16},
        progress=False,
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


def changed(dm: FaceCropDataModule, group: str, **values) -> FaceCropDataModule:
    """A datamodule with dm's settings but `values` in `group`."""
    return FaceCropDataModule(**{**dm.hparams, group: {**dm.hparams[group], **values}})


# Keys computed by the flat data config's module for one source identity: the groups must cut the same crops.
FLAT_KEYS = [
    (dict(fps=8, size=64, crop_scale=0.8, crop_shift_y=0.08, detect_width=320, min_face=0.12, align="eyes+ecc",
          align_smooth_s=0.2), "128178e6f6151dfe"),
    ({}, "945a0cfccca60d8a"),  # no align: the face box's square, the caches of checkpoints from before alignment
    (dict(fps=4, size=32, crop_scale=1.1, min_face=0.2, align="eyes"), "ef2f7e4c46f67499"),
]  # fmt: skip


@pytest.mark.parametrize("flat, key", FLAT_KEYS)
def test_the_groups_keep_the_cache_keys_of_the_flat_settings(flat, key):
    size = flat.pop("size", 64)
    grouped = FaceCropDataModule(size=size, extraction=flat)
    assert cache.cache_key("identity", None, grouped.params.as_dict()) == key
    old = FaceCropDataModule(size=size, **flat)  # a checkpoint's flat config, as evaluate.py and live rebuild it
    assert old.params == grouped.params


def test_a_flat_data_config_builds_the_module_its_groups_do():
    flat = dict(video="me.mp4", fps=4, block_s=5, gap_s=1, val_fraction=0.2, split_seed=3, batch_size=16)
    dm = FaceCropDataModule(**flat, num_workers=0, on_device=False)
    assert dm.extraction.fps == 4 and dm.split.block_s == 5 and dm.split.seed == 3 and dm.split.val_fraction == 0.2
    assert dm.loader.batch_size == 16 and not dm.on_device
    assert dm.hparams["split"]["seed"] == 3 and "split_seed" not in dm.hparams  # recorded in the groups
    assert FaceCropDataModule(**dm.hparams).hparams == dm.hparams


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            {"loader": {"batchsize": 8}},
            "data.loader.batchsize: not a setting of LoaderSettings (did you mean batch_size",
        ),
        ({"extraction": {"fps": 0}}, "data.extraction.fps=0"),
        ({"split": {"seed": -1}}, "data.split.seed=-1"),
        ({"fpss": 8}, "data.fpss: not a setting of FaceCropDataModule"),
        ({"loader": 8}, "data.loader=8: must be a group of settings"),
    ],
)
def test_a_bad_setting_names_its_group(settings, message):
    with pytest.raises(FaceVAEError, match="^" + message.replace("(", r"\(")):
        FaceCropDataModule.check_settings(settings)


def on_device(batches, datamodule):
    """The batches as the training step sees them, after Lightning's transfer to the device (here the CPU)."""
    return [datamodule.transfer_batch_to_device(b, CPU, 0) for b in batches]


def test_batches_stay_uint8_channels_last_until_the_device(datamodule):
    batch = on_device([next(iter(datamodule.train_dataloader()))], datamodule)[0]
    assert batch["image"].dtype == torch.uint8
    assert batch["image"].shape == (8, 64, 64, 3)
    assert batch["index"].dtype == torch.int64


def test_training_batches_have_a_static_shape(datamodule):
    sizes = {len(b["image"]) for b in on_device(datamodule.train_dataloader(), datamodule)}
    assert sizes == {8}


def test_on_device_loaders_send_rows_only_and_the_device_gathers_the_same_batches(datamodule):
    assert datamodule.on_device  # the default, with no loader workers
    sent = list(datamodule.train_dataloader())
    assert all(set(b) == {"index"} for b in sent)
    host = changed(datamodule, "loader", on_device=False)
    host.setup("fit")
    expected = list(host.train_dataloader())  # the same seed: the same permutation
    assert all(set(b) == {"image", "index"} for b in expected)
    got = on_device(sent, datamodule)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["image"], b["image"])
    val = on_device(datamodule.val_dataloader(), datamodule)
    assert torch.equal(torch.cat([b["image"] for b in val]), torch.from_numpy(datamodule.images("val")))


def test_the_cache_goes_to_a_device_once_and_on_the_cpu_is_not_copied(datamodule):
    crops = datamodule.crops_on(CPU)
    assert crops is datamodule.crops_on(CPU)
    assert crops.data_ptr() == datamodule.data.crops.ctypes.data
    datamodule.teardown("fit")
    assert datamodule.crops_on(CPU) is not crops  # released at teardown, made again on demand


def test_on_device_is_off_with_loader_workers_and_refuses_them_when_forced(tmp_path):
    assert not FaceCropDataModule(loader={"num_workers": 2}).on_device
    assert not FaceCropDataModule(loader={"on_device": False}).on_device
    with pytest.raises(FaceVAEError, match="data.loader.num_workers=2"):
        FaceCropDataModule(loader={"on_device": True, "num_workers": 2})
    with pytest.raises(FaceVAEError, match="data.loader.on_device=sometimes"):
        FaceCropDataModule(loader={"on_device": "sometimes"})


def test_data_parallel_processes_take_disjoint_equal_shares_of_one_permutation():
    ranks = [list(EpochBatches(100, 8, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(EpochBatches(100, 8, seed=3, world_size=2)) == 6
    seen = [i for batches in ranks for batch in batches for i in batch]
    assert len(seen) == len(set(seen)) == 96  # 12 whole batches, no example twice, the ragged 4 dropped
    assert all(len(batch) == 8 for batches in ranks for batch in batches)


def test_each_epoch_draws_a_new_permutation_that_depends_only_on_seed_and_epoch():
    sampler = EpochBatches(100, 10, seed=1)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    again = EpochBatches(100, 10, seed=1)
    again.set_epoch(1)
    torch.manual_seed(123)  # the global RNG, which callbacks draw from, plays no part
    assert list(again) == list(sampler)
    assert list(EpochBatches(100, 10, seed=2)) != first


def test_a_set_smaller_than_a_batch_per_process_is_trained_on_whole_by_each():
    assert list(EpochBatches(5, 8, seed=0, rank=1, world_size=2)) == list(EpochBatches(5, 8, seed=0, world_size=2))
    assert sorted(next(iter(EpochBatches(5, 8, seed=0, rank=1, world_size=2)))) == list(range(5))


def test_every_crop_is_in_one_split_or_dropped_in_a_gap(datamodule):
    n = len(datamodule.data.crops)
    rows = [datamodule.rows(s) for s in ("train", "val", "test")]
    assert sum(len(r) for r in rows) + int((datamodule.labels == -1).sum()) == n
    assert len(set(np.concatenate(rows).tolist())) == sum(len(r) for r in rows)
    assert all(len(r) > 0 for r in rows)


def test_val_loader_covers_the_val_split_in_time_order(datamodule):
    indices = torch.cat([b["index"] for b in datamodule.val_dataloader()]).numpy()
    assert np.array_equal(indices, datamodule.rows("val"))


def test_factors_are_exposed_per_split(datamodule):
    assert datamodule.factor_names[:2] == ["smile", "brow"]
    assert datamodule.factors("test").shape == (len(datamodule.rows("test")), 9)


def test_the_recorded_split_is_reused_by_a_fresh_datamodule(datamodule):
    state = datamodule.state_dict()
    assert set(state["split"]) == {"train", "val", "test"}
    fresh = changed(datamodule, "split", seed=99)
    fresh.load_state_dict(state)
    fresh.setup("test")
    assert np.array_equal(fresh.labels, datamodule.labels)


def test_a_short_video_without_a_block_length_trains_on_most_of_its_frames(datamodule, caplog):
    """The 12 s clip: blocks chosen from its duration (1.2 s, ten of them) hold out about 10% each."""
    short = changed(datamodule, "split", block_s=None, gap_s=None)
    with caplog.at_level("INFO"):
        short.setup("fit")
    shares = [np.mean(short.labels == code) for code in (0, 1, 2)]
    assert shares[1] == pytest.approx(0.1, abs=0.03) and shares[2] == pytest.approx(0.1, abs=0.03)
    assert shares[0] > 0.6 and "chosen for 12 s" in caplog.text and "training gets" not in caplog.text
