"""Drawing masks over images: the one place that decides how seglab shows a segmentation.

Shared by ``seglab-inspect`` (``samples.png``) and the training callbacks (prediction grids,
confusion-matrix heatmaps), so that a class has the same colour in every picture of a run.

Figures are made with :class:`matplotlib.figure.Figure` on the Agg canvas, not with ``pyplot``:
no global backend is switched, no figure manager keeps them alive, and a callback that draws every
epoch inside a notebook or a GUI session leaks nothing and opens no window.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IGNORE_COLOUR = (1.0, 1.0, 1.0)
CLASS_ALPHA = 0.5


def class_colours(num_classes: int) -> np.ndarray:
    """One RGB colour per class (tab10 / tab20, else evenly spaced hues)."""
    import matplotlib

    if num_classes <= 10:
        colours = matplotlib.colormaps["tab10"].colors[:num_classes]
    elif num_classes <= 20:
        colours = matplotlib.colormaps["tab20"].colors[:num_classes]
    else:
        colours = matplotlib.colormaps["hsv"](np.linspace(0, 1, num_classes, endpoint=False))
    return np.asarray(colours, dtype=np.float64)[:, :3]


def overlay(
    image: np.ndarray, mask: np.ndarray, colours: np.ndarray, ignore_index: int
) -> np.ndarray:
    """``image`` (H x W x 3, 0..1) with each class's colour blended in at 50%.

    ``ignore_index`` pixels are painted opaque white, so that what the loss and the metrics leave
    out stands apart from every class; other values (neither a class nor ignored) stay as they are.
    """
    valid = (mask >= 0) & (mask < len(colours))
    out = image.copy()
    out[valid] = (1 - CLASS_ALPHA) * image[valid] + CLASS_ALPHA * colours[mask[valid]]
    out[mask == ignore_index] = IGNORE_COLOUR
    return out


def normalisation(pipeline) -> tuple[np.ndarray, np.ndarray] | None:
    """The mean and std of the last ``Normalize`` of an Albumentations pipeline (what
    ``build_pipeline`` appends), or None when there is none (then images are min-max scaled)."""
    import albumentations as A

    transforms = getattr(pipeline, "transforms", None) or []
    normalize = [t for t in transforms if isinstance(t, A.Normalize)]
    if not normalize:
        return None
    return np.asarray(normalize[-1].mean, np.float64), np.asarray(normalize[-1].std, np.float64)


def display_image(image, stats: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """A (C, H, W) network input as an (H, W, 3) float image in 0..1 for display.

    With ``stats`` (mean, std of the normalisation) the input is de-normalised, so intensities look
    as in the raw data; without, it is min-max scaled. Three channels are shown as RGB, any other
    count as the first channel in grey.
    """
    image = np.asarray(image, dtype=np.float64).transpose(1, 2, 0)
    if stats is not None:
        mean, std = stats
        image = np.clip(image * std + mean, 0.0, 1.0)
    else:
        low, high = image.min(), image.max()
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
    if image.shape[-1] != 3:
        image = np.repeat(image[..., :1], 3, axis=-1)
    return image


def legend_handles(
    class_names: Sequence[str], colours: np.ndarray, ignore_index: int, show_ignore: bool
) -> list:
    """Legend patches ``<index>: <name>`` per class, and the ignore colour when it is shown."""
    from matplotlib.patches import Patch

    handles = [Patch(color=colours[c], label=f"{c}: {name}") for c, name in enumerate(class_names)]
    if show_ignore:
        handles.append(
            Patch(facecolor=IGNORE_COLOUR, edgecolor="black", label=f"{ignore_index}: ignore")
        )
    return handles


def new_figure(width: float, height: float, dpi: int = 100):
    """A figure of ``width`` x ``height`` inches on the Agg canvas (see the module docstring)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure
