"""Datasets (raw ``{"image", "mask"}`` samples) and the DataModule that augments and batches
them."""

from seglab.data.checks import DataCheckError, DataReport, check_data
from seglab.data.datamodule import SegmentationDataModule
from seglab.data.folder import FolderDataset
from seglab.data.synthetic import SyntheticShapes
from seglab.data.torchvision_sets import OxfordPet, PascalVOC
from seglab.data.transformed import TransformedDataset

__all__ = [
    "DataCheckError",
    "DataReport",
    "check_data",
    "FolderDataset",
    "OxfordPet",
    "PascalVOC",
    "SegmentationDataModule",
    "SyntheticShapes",
    "TransformedDataset",
]
