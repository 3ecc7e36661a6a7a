"""Standard datasets through torchvision: Oxford-IIIT Pet (trimaps) and Pascal VOC (palette masks).

Both yield raw ``{"image": uint8 H x W x C, "mask": uint8 H x W}`` samples in seglab's mask
convention (class indices, ``ignore_index`` = ignore) and leave augmentation to the DataModule;
the data rules are checked by ``seglab.data.validation``. Files are
read from torchvision's layouts under ``root``::

    root/oxford-iiit-pet/images/<id>.jpg
    root/oxford-iiit-pet/annotations/{trainval,test}.txt, trimaps/<id>.png
    root/VOCdevkit/VOC2012/JPEGImages/<id>.jpg, SegmentationClass/<id>.png,
        ImageSets/Segmentation/{train,val,trainval}.txt

``download=True`` lets torchvision fetch and extract the archives into ``root`` (needs network;
skipped when the data is already there).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from seglab.data.io import FileError
from seglab.data.validation import Source

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
PET_BORDERS = ("ignore", "class")


def _not_found(name: str, root: Path, expected: str, archives: str) -> FileNotFoundError:
    shown = root if root.is_absolute() else f"{root} ({root.resolve()})"
    return FileNotFoundError(
        f"{name} not found under data.dataset.root={shown}: expected {expected}. Set "
        "data.dataset.download=true to let torchvision download it there (needs network), or "
        f"extract {archives} into that folder yourself, or point data.dataset.root (default: "
        "$SEGLAB_DATA, else ./data) at the folder that holds it"
    )


def _check_class_names(class_names: Sequence[str] | None, expected: Sequence[str], fix: str):
    if class_names is not None and len(class_names) != len(expected):
        raise ValueError(
            f"data.class_names {list(class_names)} has {len(class_names)} names but this dataset "
            f"has {len(expected)} classes {list(expected)}: {fix}"
        )


def _to_array(image, channels: int) -> np.ndarray:
    array = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    return array[..., None] if array.ndim == 2 else array


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise ValueError(f"channels={channels} must be 1 or 3 (data.in_channels)")


def _source(image, mask, root: Path) -> Source:
    image, mask = Path(image), Path(mask)
    shown = [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in (image, mask)]
    return Source(*shown, (image, mask))


def _check_pet_options(split, subset, val_fraction, border, channels) -> None:
    if split not in ("trainval", "test"):
        raise ValueError(f"split={split!r} must be 'trainval' or 'test'")
    if subset not in (None, "train", "val"):
        raise ValueError(f"subset={subset!r} must be null, 'train' or 'val'")
    if subset is not None and split != "trainval":
        raise ValueError(f"subset={subset!r} splits trainval: use split='trainval' or subset=null")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must be between 0 and 1 (exclusive)")
    if border not in PET_BORDERS:
        raise ValueError(f"border={border!r} must be one of {PET_BORDERS}")
    _check_channels(channels)


class OxfordPet(Dataset):
    """Oxford-IIIT Pet segmentation (`torchvision.datasets.OxfordIIITPet`): pet vs background.

    The trimaps (1 pet, 2 background, 3 border) become class indices: background 0, pet 1, and the
    thin border band either ``255`` (``border="ignore"``: left out of loss and metrics, the usual
    choice) or class 2 (``border="class"``; use ``class_names=[background, pet, border]``).

    The set ships only ``trainval`` (3680 images) and ``test`` (3669); ``subset`` carves a seeded
    validation split out of trainval, so ``split="trainval", subset="train"`` and ``subset="val"``
    are disjoint and together cover trainval.

    Args:
        root: the folder that holds (or receives) ``oxford-iiit-pet/``.
        split: ``"trainval"`` or ``"test"``.
        subset: ``None`` (all of ``split``), or ``"train"`` / ``"val"`` of trainval.
        val_fraction, seed: size of the ``val`` subset (a fraction of trainval) and its seed.
        download: let torchvision download and extract the archives (needs network, ~800 MB).
        border: ``"ignore"`` or ``"class"``.
        channels: 3 (RGB) or 1 (gray).
        class_names: if given, checked against the number of classes ``border`` gives.
        ignore_index: the mask value of the border band with ``border="ignore"``.
    """

    maps_masks = True  # trimaps are decoded here

    def __init__(
        self,
        root: str | Path,
        split: str = "trainval",
        subset: str | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        download: bool = False,
        border: str = "ignore",
        channels: int = 3,
        class_names: Sequence[str] | None = None,
        ignore_index: int = 255,
    ):
        from torchvision.datasets import OxfordIIITPet

        _check_pet_options(split, subset, val_fraction, border, channels)
        names = ["background", "pet"] + (["border"] if border == "class" else [])
        _check_class_names(
            class_names,
            names,
            "border=class needs 'data.class_names=[background,pet,border]', border=ignore two "
            "names",
        )
        self.root = Path(root).expanduser()
        base = self.root / "oxford-iiit-pet"
        if not download and not ((base / "images").is_dir() and (base / "annotations").is_dir()):
            raise _not_found(
                "Oxford-IIIT Pet",
                self.root,
                f"{base}/images/*.jpg and {base}/annotations/ (trainval.txt, test.txt, trimaps/)",
                "images.tar.gz and annotations.tar.gz (robots.ox.ac.uk/~vgg/data/pets) into "
                f"{base}",
            )
        self._dataset = OxfordIIITPet(
            str(self.root), split=split, target_types="segmentation", download=download
        )
        self.split, self.subset, self.border, self.channels = split, subset, border, channels
        self.class_names = names
        # trimap value -> class index; anything else is reported in __getitem__
        self._table = np.full(256, -1, dtype=np.int64)
        self._table[[1, 2, 3]] = [1, 0, ignore_index if border == "ignore" else 2]
        indices = np.arange(len(self._dataset))
        if subset is not None:
            order = np.random.default_rng(seed).permutation(len(indices))
            num_val = min(max(1, round(val_fraction * len(indices))), len(indices) - 1)
            chosen = order[:num_val] if subset == "val" else order[num_val:]
            indices = np.sort(chosen)
        self.indices = indices.tolist()
        if not self.indices:
            raise ValueError(f"the {split} split of Oxford-IIIT Pet under {base} is empty")

    @property
    def image_ids(self) -> list[str]:
        return [self._dataset._images[i].stem for i in self.indices]

    @property
    def files(self) -> list[Path]:
        """Every image and trimap file, in sample order (hashed into the data fingerprint)."""
        data = self._dataset
        return [Path(p) for i in self.indices for p in (data._images[i], data._segs[i])]

    def source(self, index: int) -> Source:
        i = self.indices[index]
        return _source(self._dataset._images[i], self._dataset._segs[i], self.root)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        image, trimap = self._dataset[self.indices[index]]
        path = self._dataset._segs[self.indices[index]]
        mask = self._table[np.asarray(trimap)]
        if mask.ndim != 2 or (mask < 0).any():
            values = sorted(set(np.unique(np.asarray(trimap)).tolist()) - {1, 2, 3})
            raise FileError(
                path,
                f"trimap {path} holds values {values or np.asarray(trimap).shape} besides 1 (pet), "
                "2 (background) and 3 (border): replace the file with the original trimap",
            )
        image = _to_array(image, self.channels)
        dtype = np.uint8 if mask.max(initial=0) <= 255 else np.int64
        return {"image": image, "mask": mask.astype(dtype)}


class PascalVOC(Dataset):
    """Pascal VOC segmentation (`torchvision.datasets.VOCSegmentation`): 21 classes.

    The palette PNGs of ``SegmentationClass/`` already hold class indices 0..20 (``VOC_CLASSES``);
    their void outlines (255) become ``ignore_index``. Test labels were never published: use
    ``image_set="val"`` for testing.

    Args:
        root: the folder that holds (or receives) ``VOCdevkit/``.
        year: ``"2007"`` .. ``"2012"``.
        image_set: ``"train"``, ``"val"`` or ``"trainval"``.
        download: let torchvision download and extract the archive (needs network, ~2 GB for
            2012); skipped when ``VOCdevkit/VOC<year>`` already exists.
        class_names: if given, checked to be 21 names.
        channels: 3 (RGB) or 1 (gray).
        ignore_index: what the void outlines (255) become.
    """

    maps_masks = True  # palette PNGs whose values are class indices

    def __init__(
        self,
        root: str | Path,
        year: str = "2012",
        image_set: str = "train",
        download: bool = False,
        class_names: Sequence[str] | None = None,
        channels: int = 3,
        ignore_index: int = 255,
    ):
        from torchvision.datasets import VOCSegmentation
        from torchvision.datasets.voc import DATASET_YEAR_DICT

        year = str(year)
        if year not in DATASET_YEAR_DICT:
            raise ValueError(f"year={year!r} must be one of 2007..2012")
        if image_set not in ("train", "val", "trainval"):
            raise ValueError(f"image_set={image_set!r} must be 'train', 'val' or 'trainval'")
        _check_class_names(class_names, VOC_CLASSES, "keep the 21 VOC class names")
        _check_channels(channels)
        self.root = Path(root).expanduser()
        base = self.root / DATASET_YEAR_DICT[year]["base_dir"]
        exists = base.is_dir()
        if not download and not exists:
            raise _not_found(
                f"Pascal VOC {year}",
                self.root,
                f"{base}/JPEGImages, SegmentationClass and ImageSets/Segmentation/{image_set}.txt",
                DATASET_YEAR_DICT[year]["filename"],
            )
        split_file = base / "ImageSets" / "Segmentation" / f"{image_set}.txt"
        if exists and not split_file.is_file():
            raise FileNotFoundError(
                f"{split_file} is missing: the VOC folder {base} is incomplete; extract "
                f"{DATASET_YEAR_DICT[year]['filename']} again (or set data.dataset.download=true)"
            )
        # download only when missing: torchvision would otherwise re-extract the archive
        self._dataset = VOCSegmentation(
            str(self.root), year=year, image_set=image_set, download=download and not exists
        )
        self.year, self.image_set = year, image_set
        self.channels, self.ignore_index = channels, ignore_index
        self.class_names = list(VOC_CLASSES)

    @property
    def files(self) -> list[Path]:
        """Every image and mask file, in sample order (hashed into the data fingerprint)."""
        data = self._dataset
        return [Path(p) for pair in zip(data.images, data.masks, strict=True) for p in pair]

    def source(self, index: int) -> Source:
        return _source(self._dataset.images[index], self._dataset.masks[index], self.root)

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        image, target = self._dataset[index]
        path = self._dataset.masks[index]
        if target.mode not in ("P", "L"):
            raise FileError(
                path,
                f"VOC mask {path} has Pillow mode {target.mode!r}; expected the original palette "
                "PNG (mode P) whose pixel values are class indices",
            )
        mask = np.asarray(target, dtype=np.uint8)
        if self.ignore_index != 255:
            mask = np.where(mask == 255, self.ignore_index, mask)
            mask = mask.astype(np.uint8 if self.ignore_index <= 255 else np.int64)
        return {"image": _to_array(image, self.channels), "mask": mask}
