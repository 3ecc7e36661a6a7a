"""Datasets (raw ``{"image", "mask"}`` samples) and the DataModule that augments and batches
them."""

from seglab.data.datamodule import SegmentationDataModule, TransformedDataset
from seglab.data.folder import FolderDataset
from seglab.data.synthetic import SyntheticShapes

__all__ = ["FolderDataset", "SegmentationDataModule", "SyntheticShapes", "TransformedDataset"]
