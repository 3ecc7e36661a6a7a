"""Lightning callbacks for seglab runs (named in ``conf/callbacks/*.yaml``)."""

from seglab.callbacks.channels_last import ChannelsLast
from seglab.callbacks.encoder_freezing import EncoderFreezeUnfreeze
from seglab.callbacks.interruption import Interruption
from seglab.callbacks.per_image_metrics import PerImageMetrics
from seglab.callbacks.prediction_images import PredictionImages
from seglab.callbacks.segmentation_report import SegmentationReport

__all__ = [
    "ChannelsLast",
    "EncoderFreezeUnfreeze",
    "Interruption",
    "PerImageMetrics",
    "PredictionImages",
    "SegmentationReport",
]
