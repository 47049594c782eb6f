"""FaceCropDataModule: uint8 batches from the cache, split by time, factors exposed, the split recorded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facevae.data.datamodule import FaceCropDataModule


@pytest.fixture(scope="module")
def datamodule(long_clip, tmp_path_factory):
    dm = FaceCropDataModule(
        video=str(long_clip),
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        block_s=1.0,
        gap_s=0.25,
        batch_size=8,
        eval_batch_size=16,
        progress=False,
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_batches_stay_uint8_channels_last_until_the_device(datamodule):
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].dtype == torch.uint8
    assert batch["image"].shape == (8, 64, 64, 3)
    assert batch["index"].dtype == torch.int64


def test_training_batches_have_a_static_shape(datamodule):
    sizes = {len(b["image"]) for b in datamodule.train_dataloader()}
    assert sizes == {8}


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
    fresh = FaceCropDataModule(**{**datamodule.hparams, "split_seed": 99})
    fresh.load_state_dict(state)
    fresh.setup("test")
    assert np.array_equal(fresh.labels, datamodule.labels)
