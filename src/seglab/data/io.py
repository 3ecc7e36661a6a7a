"""Reading image and mask files into the sample convention (Pillow).

Images become H x W x C arrays: uint8 (0..255) for 8-bit files, float32 on a 0..1 scale for 16-bit
files (divided by ``max_value_16bit``), the two types Albumentations augments natively. The
DataModule's pipeline brings both to 0..1 before it normalises, so ``data.mean`` and ``data.std``
are on the 0..1 scale whatever the bit depth. Pillow reads 16-bit grayscale, but would cut 16-bit
RGB TIFFs and PNGs to 8 bits: those are read with OpenCV (``IMREAD_UNCHANGED``), keeping 16 bits.

Masks become (H, W) class-index maps from one of three encodings: class-index files as they are,
a value -> class map (``mask_mapping``, e.g. ``{0: 1, 255: 0}``) or an RGB palette
(``{class: [r, g, b]}``). A value or colour the map does not cover stops with the file's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from seglab.data.validation import shorten

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr")


class FileError(ValueError):
    """A file the reader cannot turn into a sample; the message names ``path`` and the fix."""

    def __init__(self, path: Path, message: str):
        super().__init__(message)
        self.path = Path(path)


class UnreadableFile(FileError):
    """A file that cannot be decoded (truncated, garbage, not an image); ``__cause__`` says why."""


def open_image(path: Path) -> Image.Image:
    """The decoded file; unreadable, truncated or non-image files name the file."""
    try:
        image = Image.open(path)
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise UnreadableFile(
            path, f"cannot read {path} ({error}): re-export or remove the file"
        ) from error
    return image


def is_16_bit_colour(path: Path, image: Image.Image) -> bool:
    """A 16-bit RGB(A) TIFF or PNG, which Pillow would cut to its high byte (mode ``RGB``)."""
    if image.mode not in ("RGB", "RGBA"):
        return False
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, (8,))
        return max(bits if isinstance(bits, tuple) else (bits,)) > 8
    if image.format == "PNG":
        with open(path, "rb") as file:
            header = file.read(26)  # IHDR: bit depth at byte 24
        return len(header) == 26 and header[24] == 16
    return False


def read_16_bit_colour(path: Path, channels: int | None) -> np.ndarray:
    """A 16-bit colour file as uint16 RGB (or gray for ``channels=1``), read with OpenCV."""
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16 or array.ndim != 3:
        raise FileError(path, f"image {path}: OpenCV cannot read it as 16-bit colour: re-export")
    rgb = cv2.cvtColor(array, cv2.COLOR_BGRA2RGB if array.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    if channels == 1:  # Pillow's luma weights, as for 8-bit images
        return (rgb.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.float32)
    return rgb


def read_image(path: Path, channels: int | None = None, max_value_16bit: float = 65535.0):
    """H x W x C array; ``channels`` 1 or 3 converts gray <-> RGB, None keeps the file's."""
    image = open_image(path)
    if is_16_bit_colour(path, image):
        array = read_16_bit_colour(path, channels).astype(np.float32) / max_value_16bit
    elif image.mode in SIXTEEN_BIT_MODES:
        array = np.asarray(image).astype(np.float32) / max_value_16bit
    elif image.mode in EIGHT_BIT_MODES:
        gray = image.mode in ("1", "L", "LA") if channels is None else channels == 1
        array = np.asarray(image.convert("L" if gray else "RGB"))
    else:
        raise FileError(
            path,
            f"image {path} has Pillow mode {image.mode!r}: save it as 8- or 16-bit gray or RGB",
        )
    array = array[..., None] if array.ndim == 2 else array
    if channels == 3 and array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array


def class_index(key, class_names: Sequence[str] | None, what: str, ignore_index: int) -> int:
    """A class given by index (``1``, ``"1"``), by name (``membrane``) or as ``ignore``."""
    if isinstance(key, int) or str(key).isdigit():
        return int(key)
    if key == "ignore" and (class_names is None or key not in class_names):
        return ignore_index
    if class_names is None or key not in class_names:
        raise ValueError(f"{what} {key!r} is neither a class index nor one of {class_names}")
    return list(class_names).index(key)


def mapping_table(mapping: Mapping, class_names, ignore_index: int = 255) -> dict[int, int]:
    """``{mask value: class index}`` from ``{value: class index, name or ignore}``."""
    return {
        int(value): class_index(c, class_names, "mask_mapping class", ignore_index)
        for value, c in mapping.items()
    }


def palette_table(palette: Mapping, class_names, ignore_index: int = 255) -> dict[int, int]:
    """``{0xRRGGBB: class index}`` from ``{class name, index or ignore: [r, g, b]}``."""
    table: dict[int, int] = {}
    for key, colour in palette.items():
        rgb = [int(c) for c in colour]
        if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
            raise ValueError(f"palette colour of {key!r} must be [r, g, b] in 0..255, got {colour}")
        code = (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
        if code in table:
            raise ValueError(f"palette colour {rgb} is given to two classes")
        table[code] = class_index(key, class_names, "palette key", ignore_index)
    return table


def rgb_text(code: int) -> str:
    return f"[{code >> 16}, {(code >> 8) & 255}, {code & 255}]"


def lookup(values: np.ndarray, table: Mapping[int, int], path: Path, name: str, show=str):
    """Every value of ``values`` mapped through ``table``; uncovered values name file and fix."""
    present, inverse = np.unique(values, return_inverse=True)
    unknown = [show(v) for v in present.tolist() if v not in table]
    if unknown:
        raise FileError(
            path,
            f"mask {path} has value(s) not in {name}: {shorten(unknown)}. Add them to {name} "
            "(give them the ignore index to leave those pixels out) or fix the mask",
        )
    classes = np.array([table[v] for v in present.tolist()])
    return classes[inverse].reshape(values.shape)


def read_mask(path: Path, mapping: Mapping[int, int] | None = None, palette=None) -> np.ndarray:
    """(H, W) class indices (uint8 when they fit); ``mapping`` / ``palette`` from the tables."""
    image = open_image(path)
    if palette is not None:
        rgb = np.asarray(image.convert("RGB")).astype(np.int64)
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        mask = lookup(codes, palette, path, "palette (colours [r, g, b])", rgb_text)
    else:
        mask = np.asarray(image.convert("L") if image.mode in ("1", "LA") else image)
        if image.mode == "1":
            mask = mask // 255  # 1-bit masks: black 0, white 1
        if mask.ndim == 3:  # RGB(A): only a gray image saved as RGB is a class-index mask
            if not (mask[..., :3] == mask[..., :1]).all():
                raise FileError(
                    path,
                    f"mask {path} is a colour image: set "
                    "'data.dataset.palette={class: [r, g, b]}' or save single-channel "
                    "class-index masks",
                )
            mask = mask[..., 0]
        if mapping is not None:
            mask = lookup(mask, mapping, path, "mask_mapping")
    return mask.astype(np.uint8 if mask.max(initial=0) <= 255 else np.int64)
