"""Lightning callbacks for seglab runs (named in ``conf/callbacks/*.yaml``)."""

from seglab.callbacks.encoder_freezing import EncoderFreezeUnfreeze

__all__ = ["EncoderFreezeUnfreeze"]
