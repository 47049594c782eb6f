"""When a run validates: every `trainer.check_val_every_n_epoch` epochs, and at its last epoch too.

Lightning validates only every Nth epoch, and the checkpoints, the val metrics and the figures all come from a
validation: a run of 7 epochs validated every 5 would end keeping epoch 5's weights, and a run shorter than N epochs
with no checkpoint at all, while saying it finished.
"""

from __future__ import annotations

import pytorch_lightning as pl


class ValidateLastEpoch(pl.Callback):
    """Makes the run's last epoch a validation epoch, whatever trainer.check_val_every_n_epoch says."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        every, epoch = trainer.check_val_every_n_epoch, trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs > 0
        if last and every is not None and epoch % every:
            trainer.check_val_every_n_epoch = epoch  # Lightning asks at the epoch's end: epoch % epoch == 0
