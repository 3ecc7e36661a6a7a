"""Train the decoder alone for a few epochs, then the whole network (``callbacks=finetune``).

The network (``pl_module.net``, a :class:`seglab.models.SegmentationNet` with an ``encoder``:
``model=resunet`` or ``model=smp``) has its encoder frozen (``net.freeze_encoder()``) when fitting
starts and unfrozen (``net.unfreeze_encoder()``) at the start of epoch ``unfreeze_at_epoch``; a
network without an encoder stops the run when fitting is set up. Freezing only switches
``requires_grad`` off and keeps the encoder's batch-norm statistics fixed; the optimiser was built
with every parameter of the module from the start, and skips parameters that have no gradient (no
update, no weight decay, no moment estimates). So unfreezing needs no new parameter group: from
that epoch on the encoder is trained with the same learning rate and schedule as the decoder.
Resuming from a checkpoint past ``unfreeze_at_epoch`` unfreezes at the first resumed epoch.

Under DDP, parameters that receive no gradient must be declared: use
``trainer.strategy=ddp_find_unused_parameters_true`` (checked when fitting starts).
"""

from __future__ import annotations

import logging

import lightning as L
from torch.nn.parallel import DistributedDataParallel

from seglab.models.base import SegmentationNet

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
    def net(pl_module: L.LightningModule) -> SegmentationNet:
        """The module's network; a ValueError when it has no encoder to freeze."""
        net = pl_module.net
        if not isinstance(net, SegmentationNet) or net.encoder is None:
            raise ValueError(
                f"callbacks=finetune freezes the network's encoder, but {type(net).__name__} "
                "has none: use model=resunet or model=smp, or remove callbacks=finetune "
                "(callbacks.encoder_freezing=null)"
            )
        return net

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Before DDP wraps the model: every parameter must be trainable now so that DDP
        # registers it (also with model.freeze_encoder=true); freezing comes in on_fit_start.
        if stage == "fit":
            self.net(pl_module).unfreeze_encoder()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        ddp = trainer.strategy.model
        if isinstance(ddp, DistributedDataParallel) and not ddp.find_unused_parameters:
            raise ValueError(
                "callbacks.encoder_freezing freezes the encoder, whose parameters then get no "
                "gradient, and DDP must be told so: set "
                "trainer.strategy=ddp_find_unused_parameters_true"
            )
        self.net(pl_module).freeze_encoder()
        self.frozen = True
        if trainer.is_global_zero:
            log.info(
                "Encoder frozen until epoch %d; its batch-norm layers stay in eval mode meanwhile "
                "(Lightning's warning about modules in eval mode refers to them)",
                self.unfreeze_at_epoch,
            )

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.frozen and trainer.current_epoch >= self.unfreeze_at_epoch:
            self.net(pl_module).unfreeze_encoder()
            self.frozen = False
            if trainer.is_global_zero:
                log.info("Encoder unfrozen at epoch %d", trainer.current_epoch)
