"""The data a checkpoint was trained on, with its split: what evaluate.py and the live view read a run's frames from."""

from __future__ import annotations

from facevae.core.checkpoint import TrainedRun
from facevae.core.errors import FaceVAEError
from facevae.data.datamodule import FaceCropDataModule


def datamodule_for(run: TrainedRun, overrides: dict | None = None) -> FaceCropDataModule:
    """The training data module with the training split; `overrides` (e.g. video, cache_dir) point it elsewhere.

    The crops must be the ones the model was trained on: same source content and extraction parameters, which
    the cache key encodes. A mismatch is an error rather than a silently different test set.
    """
    data_cfg = {k: v for k, v in run.config["data"].items() if k != "_target_"}
    data_cfg.update({k: v for k, v in (overrides or {}).items() if v is not None})
    data_cfg["progress"] = False
    try:
        dm = FaceCropDataModule(**data_cfg)
    except TypeError as err:
        raise FaceVAEError(f"{run.path}: its data config does not fit this version of facevae ({err})") from None
    if dm.hparams.video and not dm.source.exists():  # the crops are found by the video's content: it is needed
        raise FaceVAEError(
            f"{dm.source}: the data {run.path.name} was trained on is not there; give data.video= where it is now"
        )
    dm.load_state_dict({"split": run.meta["split"]})
    dm.setup("test")
    key = dm.data.manifest["key"]
    if key != run.meta["cache_key"]:
        raise FaceVAEError(
            f"{dm.source}: the data no longer matches the checkpoint {run.path.name} (crop cache {key}, trained on "
            f"{run.meta['cache_key']}): the video or the extraction parameters changed"
        )
    return dm
