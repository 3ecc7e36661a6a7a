"""Bring-your-own data: image and mask files in folders.

Layouts (``root`` is ``data.dataset.root``)::

    root/images/a.png  root/masks/a.png      one pool, split here: seeded fractions, k-fold, stems
    root/{train,val,test}/{images,masks}/    fixed splits: ``split`` picks the folder

Images and masks pair by file stem; a mask may add a suffix and use another format
(``a.jpg`` <-> ``a_mask.png``). Images: png, jpg, jpeg, tif, tiff, bmp; gray or RGB; 8 or 16 bit.
How files become arrays (16-bit scaling, mask encodings): see ``seglab.data.io``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from seglab.data.io import mapping_table, palette_table, read_image, read_mask
from seglab.data.validation import Source, shorten

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
SPLITS = ("train", "val", "test")
EMPTY_FIXES = {
    "train": "lower val_fraction / test_fraction or list fewer val_stems / test_stems",
    "val": "raise val_fraction (above 0) or set val_stems",
    "test": "raise test_fraction (above 0) or set test_stems; or set data.splits.test=null "
    "test=false",
}


def list_images(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of the image files in ``folder``; other files are ignored."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"folder {folder} does not exist: expected {folder.parent}/images and "
            f"{folder.parent}/masks with matching file names. Create it or fix data.dataset.root"
        )
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    files = [p for p in files if not p.name.startswith(".")]
    if not files:
        raise FileNotFoundError(f"{folder} holds no image files ({'/'.join(IMAGE_EXTENSIONS)})")
    by_stem: dict[str, Path] = {}
    for path in files:
        if path.stem in by_stem:
            raise ValueError(f"{by_stem[path.stem]} and {path} share a stem: keep one of them")
        by_stem[path.stem] = path
    return by_stem


def pair_files(root: Path, mask_suffix: str = "") -> tuple[list, list[Path], list[Path]]:
    """``(stem, image, mask)`` for ``root/images/<stem>.*`` and ``root/masks/<stem><suffix>.*``,
    plus the images without a mask and the masks without an image."""
    images, masks = list_images(root / "images"), list_images(root / "masks")
    lonely_images = [images[s] for s in images if s + mask_suffix not in masks]
    wanted = {stem + mask_suffix for stem in images}
    lonely_masks = [path for stem, path in masks.items() if stem not in wanted]
    pairs = [
        (stem, images[stem], masks[stem + mask_suffix])
        for stem in sorted(images)
        if stem + mask_suffix in masks
    ]
    if not pairs:  # nothing pairs: the strays are the whole story
        problems = [f"{len(lonely_images)} image(s) without a mask: {shorten(lonely_images)}"]
        if lonely_masks:
            problems.append(
                f"{len(lonely_masks)} mask(s) without an image: {shorten(lonely_masks)}"
            )
        raise ValueError(f"{root}: {'; '.join(problems)}. {pairing_fix(mask_suffix)}")
    return pairs, lonely_images, lonely_masks


def pairing_fix(mask_suffix: str) -> str:
    return (
        f"Masks pair with images by file stem plus mask_suffix={mask_suffix!r} (a.jpg <-> "
        f"a{mask_suffix}.png): add the missing files, move the strays away or fix "
        "data.dataset.mask_suffix"
    )


def check_split_options(val_fraction, test_fraction, num_folds, fold, val_stems, **_) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ValueError(f"{name}={value} must be in [0, 1)")
    if num_folds is None and val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction={val_fraction} + test_fraction={test_fraction} leave nothing to train "
            "on: their sum must be below 1"
        )
    if (num_folds is None) != (fold is None):
        raise ValueError(f"k-fold needs both num_folds and fold, got {num_folds=}, {fold=}")
    if num_folds is not None and (num_folds < 2 or not 0 <= fold < num_folds):
        raise ValueError(
            f"k-fold needs num_folds >= 2 and 0 <= fold < num_folds: {num_folds=}, {fold=}"
        )
    if num_folds is not None and val_stems is not None:
        raise ValueError("set either val_stems or num_folds and fold, not both")


def choose_stems(
    stems, split, val_fraction, test_fraction, num_folds, fold, seed, val_stems, test_stems
) -> list[str]:
    """The sorted stems of ``split``: explicit stem lists, else a seeded permutation of the rest.

    Test is set aside first (``test_stems`` or ``test_fraction``), then val (``val_stems``, fold
    ``fold`` of ``num_folds``, or ``val_fraction``); train is what is left. Each split's dataset
    computes the same permutation from ``seed`` alone, so the splits are disjoint.
    """
    for name, given in (("val_stems", val_stems), ("test_stems", test_stems)):
        unknown = sorted(set(given or ()) - set(stems))
        if unknown:
            raise ValueError(f"{name} {shorten(unknown)} are not image stems ({shorten(stems)})")
    fixed = set(val_stems or ()) | set(test_stems or ())
    pool = [stems[i] for i in np.random.default_rng(seed).permutation(len(stems))]
    pool = [stem for stem in pool if stem not in fixed]

    def take(fraction: float) -> list[str]:
        return pool[: 0 if fraction == 0 else max(1, round(len(stems) * fraction))]

    test = list(test_stems) if test_stems is not None else take(test_fraction)
    pool = [stem for stem in pool if stem not in test]
    if val_stems is not None:
        val = list(val_stems)
    elif num_folds is not None:
        if num_folds > len(pool):
            raise ValueError(f"num_folds={num_folds} exceeds the {len(pool)} images to fold")
        val = [pool[i] for i in np.array_split(np.arange(len(pool)), num_folds)[fold]]
    else:
        val = take(val_fraction)
    train = [stem for stem in pool if stem not in val]
    return sorted({"train": train, "val": val, "test": test}[split])


def find_samples(root: Path, split: str, mask_suffix: str, options: dict) -> tuple:
    """``(stem, image, mask)`` of ``split``, from its split folder or chosen from one pool, and
    the images without a mask and masks without an image (of the pool, or of the folder)."""
    split_folders = [s for s in SPLITS if (root / s).is_dir()]
    if (root / "images").is_dir() or (root / "masks").is_dir():
        samples, *strays = pair_files(root, mask_suffix)
        chosen = set(choose_stems([stem for stem, _, _ in samples], split, **options))
        return [sample for sample in samples if sample[0] in chosen], *strays
    if not split_folders:
        entries = sorted(p.name for p in root.iterdir())
        raise FileNotFoundError(
            f"{root} has neither images/ + masks/ nor train/, val/, test/ folders (it holds: "
            f"{shorten(entries) or 'nothing'}). Arrange the files as root/images + root/masks "
            "or root/{train,val,test}/{images,masks}"
        )
    if any(options[name] is not None for name in ("num_folds", "val_stems", "test_stems")):
        raise ValueError(
            f"{root} has split folders {split_folders}: num_folds, val_stems and test_stems "
            "only apply to a single images/ + masks/ pool"
        )
    if split not in split_folders:
        fix = "; or set data.splits.test=null test=false" if split == "test" else ""
        raise FileNotFoundError(
            f"{root / split} does not exist (found {split_folders}): add {split}/images and "
            f"{split}/masks{fix}"
        )
    return pair_files(root / split, mask_suffix)


class FolderDataset(Dataset):
    """Images and masks from folders (layouts: module docstring; file reading: ``io``).

    Args:
        root: the data folder. split: ``train``, ``val`` or ``test``.
        class_names: the classes mask_mapping / palette may name. channels: 1 or 3 converts
            every image (gray <-> RGB); None keeps it.
        mask_suffix: masks are ``<image stem><mask_suffix>.<any image extension>``.
        val_fraction, test_fraction, seed: a seeded random split of the images/ pool.
        num_folds, fold: k-fold cross-validation: val is fold ``fold``, train the other folds
            (after test is set aside); replaces val_fraction.
        val_stems, test_stems: explicit file stems of val / test; train is the rest.
        mask_mapping: ``{mask value: class index or name}`` for single-channel masks.
        palette: ``{class name or index: [r, g, b]}`` for colour masks.
        ignore_index: what the class ``ignore`` in mask_mapping / palette maps to.
        max_value_16bit: 16-bit images are divided by it (e.g. 4095 for 12-bit data).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        class_names: Sequence[str] | None = None,
        channels: int | None = None,
        mask_suffix: str = "",
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        num_folds: int | None = None,
        fold: int | None = None,
        seed: int = 0,
        val_stems: Sequence[str] | None = None,
        test_stems: Sequence[str] | None = None,
        mask_mapping: Mapping | None = None,
        palette: Mapping | None = None,
        ignore_index: int = 255,
        max_value_16bit: float = 65535.0,
    ):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            shown = root if self.root.is_absolute() else f"{root} ({self.root.resolve()})"
            raise FileNotFoundError(
                f"data root {shown} does not exist: set data.dataset.root to the folder that holds "
                "images/ and masks/ (or train/, val/, test/)"
            )
        if split not in SPLITS:
            raise ValueError(f"split={split!r} must be one of {SPLITS}")
        if channels not in (None, 1, 3):
            raise ValueError(f"channels={channels} must be 1, 3 or None")
        if mask_mapping is not None and palette is not None:
            raise ValueError("set mask_mapping (single-channel masks) or palette, not both")
        self.split, self.channels, self.ignore_index = split, channels, ignore_index
        self.class_names = None if class_names is None else list(class_names)
        self.max_value_16bit = max_value_16bit
        names = (class_names, ignore_index)
        self.mapping = None if mask_mapping is None else mapping_table(mask_mapping, *names)
        self.palette = None if palette is None else palette_table(palette, *names)
        options = {
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "num_folds": num_folds,
            "fold": fold,
            "seed": seed,
            "val_stems": None if val_stems is None else [str(s) for s in val_stems],
            "test_stems": None if test_stems is None else [str(s) for s in test_stems],
        }
        check_split_options(**options)
        self.mask_suffix = mask_suffix
        self.samples, self.lonely_images, self.lonely_masks = find_samples(
            self.root, split, mask_suffix, options
        )
        if self.lonely_images or self.lonely_masks:
            self._warn_unpaired()
        if not self.samples:
            raise ValueError(f"the {split} split of {self.root} is empty: {EMPTY_FIXES[split]}")

    @property
    def stems(self) -> list[str]:
        return [stem for stem, _, _ in self.samples]

    @property
    def files(self) -> list[Path]:
        """Every image and mask file, in sample order (the run's data fingerprint hashes them)."""
        return [path for _, image, mask in self.samples for path in (image, mask)]

    @property
    def maps_masks(self) -> bool:
        """Masks go through mask_mapping or palette (so 0/255 in the result is meant)."""
        return self.mapping is not None or self.palette is not None

    def source(self, index: int) -> Source:
        """The image and mask files of sample ``index`` (shown relative to ``root``)."""
        _, image, mask = self.samples[index]
        return Source(relative(image, self.root), relative(mask, self.root), (image, mask))

    def _warn_unpaired(self) -> None:
        warnings.warn(
            f"{self.root}: {len(self.lonely_images)} image(s) without a mask and "
            f"{len(self.lonely_masks)} mask(s) without an image are left out; the data check "
            "(check_data) lists them",
            stacklevel=3,
        )

    def unpaired(self) -> list[tuple[str, str, str]]:
        """``(kind, file, detail)`` of every file that pairs with no other (``check_data``
        lists them beside the other data problems)."""
        suffix = self.mask_suffix
        return [
            *(
                ("lonely_image", relative(p, self.root), f"no mask {p.stem}{suffix}.*")
                for p in self.lonely_images
            ),
            *(("lonely_mask", relative(p, self.root), "no image") for p in self.lonely_masks),
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        """The sample as read; unreadable files raise ``io.FileError`` naming the file (the
        data rules are checked by ``seglab.data.validation``)."""
        _, image_path, mask_path = self.samples[index]
        image = read_image(image_path, self.channels, self.max_value_16bit)
        mask = read_mask(mask_path, self.mapping, self.palette)
        return {"image": image, "mask": mask}


def relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
