"""The notebooks in notebooks/ run from top to bottom (with smaller parameters) and show what
they promise."""

from __future__ import annotations

import os

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import REPO_ROOT

pytestmark = pytest.mark.slow

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
# Replaces the cell tagged "parameters" (as papermill does): a tiny run.
TINY_PARAMETERS = {
    "quickstart.ipynb": (
        "EPOCHS = 1\nTRAIN_SAMPLES = 16\nEVAL_SAMPLES = 8\nIMAGE_SIZE = 32\n"
        'LEARNING_RATES = "1e-3,1e-2"\n'
    ),
    "predict.ipynb": (
        "EPOCHS = 1\nTRAIN_SAMPLES = 16\nIMAGE_SIZE = 32\nMOSAIC = 3\nTILE_SIZE = 64\n"
        'TTA = "flips"\n'
    ),
}


TEXT = ("text/plain", "text/markdown")  # rich tables come as display data in a kernel


def execute(path, parameters: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    tagged[0].source = parameters
    env = {"WANDB_MODE": "offline", "NO_ALBUMENTATIONS_UPDATE": "1"}
    os.environ.update(env)  # the kernel inherits this process's environment
    client = NotebookClient(notebook, timeout=600, kernel_name="python3")
    client.execute(cwd=str(path.parent))
    return notebook


def outputs(notebook, kind: str) -> list:
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if kind in o]


def test_every_notebook_has_tiny_parameters():
    assert NOTEBOOKS, "notebooks/ holds no notebook"
    assert sorted(p.name for p in NOTEBOOKS) == sorted(TINY_PARAMETERS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_shows_its_results(path):
    notebook = execute(path, TINY_PARAMETERS[path.name])
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    if path.name == "quickstart.ipynb":
        text = "".join(
            o.get("text", "") + "".join(o.get("data", {}).get(k, "") for k in TEXT)
            for c in notebook.cells
            for o in c.get("outputs", [])
        )
        assert "| job | overrides | val/dice_best | status |" in text  # the sweep summary
        assert "ranked by val/dice_best" in text  # the leaderboard
        assert "| class | IoU | Dice | support (pixels) |" in text  # the per-class report
        # curves, the prediction grid and the confusion matrix, as PNG outputs
        assert len([o for o in outputs(notebook, "data") if "image/png" in o.data]) == 3
    if path.name == "predict.ipynb":
        text = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
        assert "image: (96, 96, 1) uint8" in text  # the large image: 3 x 3 images of 32 x 32
        assert "tiled + tta=flips: Dice" in text
        assert len([o for o in outputs(notebook, "data") if "image/png" in o.data]) == 2
