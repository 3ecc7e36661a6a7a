"""Train the decoder alone for a few epochs, then the whole network (``callbacks=finetune``).

The encoder (``pl_module.net.encoder``, anything with ``freeze()`` and ``unfreeze()`` such as
:class:`seglab.models.ResNetEncoder`) is frozen when fitting starts and unfrozen at the start of
epoch ``unfreeze_at_epoch``. Freezing only switches ``requires_grad`` off and keeps the encoder's
batch-norm statistics fixed; the optimiser was built with every parameter of the module from the
start, and skips parameters that have no gradient (no update, no weight decay, no moment
estimates). So unfreezing needs no new parameter group: from that epoch on the encoder is trained
with the same learning rate and schedule as the decoder. Resuming from a checkpoint past
``unfreeze_at_epoch`` unfreezes at the first resumed epoch.

Under DDP, parameters that receive no gradient must be declared: use
``trainer.strategy=ddp_find_unused_parameters_true`` (checked when fitting starts).
"""

from __future__ import annotations

import logging

import lightning as L
from torch import nn
from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger(__name__)


class EncoderFreezeUnfreeze(L.Callback):
    """Freeze ``pl_module.net.encoder`` at the start of fitting; unfreeze it at an epoch."""

    def __init__(self, unfreeze_at_epoch: int = 2):
        if unfreeze_at_epoch < 0:
            raise ValueError(
                "callbacks.encoder_freezing.unfreeze_at_epoch must be >= 0, "
                f"got {unfreeze_at_epoch}"
            )
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.frozen = False

    @staticmethod
    def encoder(pl_module: L.LightningModule) -> nn.Module | None:
        encoder = getattr(getattr(pl_module, "net", None), "encoder", None)
        return encoder if hasattr(encoder, "freeze") and hasattr(encoder, "unfreeze") else None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Before DDP wraps the model: every parameter must be trainable now so that DDP
        # registers it (also with model.freeze_encoder=true); freezing comes in on_fit_start.
        encoder = self.encoder(pl_module)
        if stage == "fit" and encoder is not None:
            encoder.unfreeze()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        encoder = self.encoder(pl_module)
        if encoder is None:
            log.warning("EncoderFreezeUnfreeze: the network has no freezable encoder; no effect")
            return
        ddp = trainer.strategy.model
        if isinstance(ddp, DistributedDataParallel) and not ddp.find_unused_parameters:
            raise ValueError(
                "callbacks.encoder_freezing freezes the encoder, whose parameters then get no "
                "gradient, and DDP must be told so: set "
                "trainer.strategy=ddp_find_unused_parameters_true"
            )
        encoder.freeze()
        self.frozen = True
        if trainer.is_global_zero:
            log.info(
                "Encoder frozen until epoch %d; its batch-norm layers stay in eval mode meanwhile "
                "(Lightning's warning about modules in eval mode refers to them)",
                self.unfreeze_at_epoch,
            )

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.frozen and trainer.current_epoch >= self.unfreeze_at_epoch:
            self.encoder(pl_module).unfreeze()
            self.frozen = False
            if trainer.is_global_zero:
                log.info("Encoder unfrozen at epoch %d", trainer.current_epoch)
