"""``export.py`` (ONNX, TorchScript) on the tiny run, and predicting with the exported files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

import seglab
from seglab.checkpoints import CheckpointError
from seglab.config import CONFIG_DIR
from seglab.data.io import read_image
from seglab.inference.export import ExportError
from tests.conftest import run_script

onnx = pytest.importorskip("onnx", reason='needs the export extra: pip install "seglab[export]"')
pytest.importorskip("onnxruntime")

SMALL_CHECKS = "check_sizes=[[31,17],[20,36],[1,1]]"


@pytest.fixture
def images(tmp_path):
    """A non-square RGB 36x48 image and an odd-size 16-bit gray 31x17 one."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)).save(folder / "rgb.png")
    Image.fromarray(rng.integers(0, 65536, (31, 17), dtype=np.uint16)).save(folder / "gray16.png")
    return folder


def export_cfg(*overrides: str):
    """``conf/export.yaml`` composed in-process with ``overrides``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("export", overrides=list(overrides))


def stored_card(run: Path) -> dict:
    best = seglab.load_model(run, device="cpu").checkpoint_path
    return torch.load(best, weights_only=True)["seglab"]


def test_onnx_round_trip_through_export_and_predict(tiny_run_dir, images, tmp_path):
    model = tmp_path / "model.onnx"
    args = [f"ckpt_path={tiny_run_dir}", f"output={model}", SMALL_CHECKS, f"check_input={images}"]
    result = run_script("export.py", args, cwd=tmp_path)
    logs = result.stdout + result.stderr
    assert result.returncode == 0, logs[-4000:]
    assert "dynamo exporter" in logs and "| random 2x1x31x17 |" in logs
    assert "| rgb.png 1x1x36x48 |" in logs and "| gray16.png 1x1x31x17 |" in logs
    assert "max abs difference" in logs

    proto = onnx.load(str(model))
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    assert json.loads(metadata["seglab"]) == stored_card(tiny_run_dir)
    facts = json.loads(metadata["seglab_export"])
    assert facts["format"] == "onnx" and facts["exporter"] == "dynamo"
    assert facts["source"].endswith(".ckpt")
    dims = [
        [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        for value in (proto.graph.input[0], proto.graph.output[0])
    ]
    assert dims == [["batch", 1, "height", "width"], ["batch", 4, "height", "width"]]

    out = tmp_path / "out"
    options = ["tta=flips", "tile_size=16", "save_probabilities=npy"]
    result = run_script(
        "predict.py", [f"ckpt_path={model}", f"input={images}", f"output={out}", *options], tmp_path
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    from_ckpt = seglab.load_model(tiny_run_dir, device="cpu", tta="flips", tile_size=16)
    for stem in ("rgb", "gray16"):
        image = read_image(images / f"{stem}.png", None, 65535.0)
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{stem}.png")), from_ckpt(image))
        np.testing.assert_allclose(
            np.load(out / f"{stem}_probabilities.npy"), from_ckpt.probabilities(image), atol=1e-5
        )


def test_torchscript_and_legacy_onnx_in_process(tiny_run_dir, images, tmp_path):
    from seglab.export import export

    from_ckpt = seglab.load_model(tiny_run_dir, device="cpu")
    image = read_image(images / "rgb.png", None, 65535.0)
    for fmt, extra in (("torchscript", []), ("onnx", ["onnx_exporter=legacy"])):
        cfg = export_cfg(
            f"ckpt_path={tiny_run_dir}",
            f"format={fmt}",
            f"output={tmp_path}/",
            SMALL_CHECKS,
            *extra,
        )
        result = export(cfg)
        path = Path(result["path"])
        assert path.parent == tmp_path and path.stem == from_ckpt.checkpoint_path.stem
        assert result["max_abs_diff"] <= 1e-4 and len(result["rows"]) == 3
        exported = seglab.load_model(path, device="cpu")
        assert exported.card == from_ckpt.card and exported.checkpoint_path == path
        np.testing.assert_allclose(
            exported.probabilities(image), from_ckpt.probabilities(image), atol=1e-5
        )
        np.testing.assert_array_equal(exported(image), from_ckpt(image))
    extra = {"seglab.json": "", "seglab_export.json": ""}
    torch.jit.load(str(tmp_path / f"{path.stem}.pt"), _extra_files=extra)
    assert json.loads(extra["seglab.json"]) == stored_card(tiny_run_dir)
    assert json.loads(extra["seglab_export.json"])["format"] == "torchscript"
    with pytest.raises(CheckpointError, match=r"trained for 4 classes .* not the num_classes=3"):
        seglab.load_model(path, num_classes=3)


def test_a_difference_above_tolerance_fails_the_export(tiny_run_dir, tmp_path, monkeypatch):
    import seglab.inference.export as export_module
    from seglab.export import export

    loaded = export_module.load_exported

    def broken(path, device="cpu"):  # an exported model that is off by 1e-3
        net, card = loaded(path, device)
        return (lambda x: net(x) + 1e-3), card

    monkeypatch.setattr(export_module, "load_exported", broken)
    model = tmp_path / "model.pt"
    cfg = export_cfg(
        f"ckpt_path={tiny_run_dir}", "format=torchscript", f"output={model}", SMALL_CHECKS
    )
    with pytest.raises(ExportError, match=r"differs from the PyTorch network by 0\.001") as error:
        export(cfg)
    assert "tolerance 0.0001" in str(error.value) and "random 2x1x31x17" in str(error.value)
    assert "the file was removed" in str(error.value) and not model.exists()


def test_bad_export_settings_name_the_fix(tiny_run_dir, tmp_path):
    from seglab.export import export

    ckpt = f"ckpt_path={tiny_run_dir}"
    cases = {
        (f"ckpt_path={tmp_path}/missing",): "does not exist: pass a .ckpt file or a run folder",
        (ckpt, "format=onxx"): r"format=onxx is not known \(did you mean format=onnx\?\)",
        (ckpt, "onnx_exporter=torchscript"): "onnx_exporter=torchscript is not known",
        (ckpt, f"output={tmp_path}/model.pt"): "an ONNX file's name must end in .onnx",
        (ckpt, "tolerance=0"): "tolerance=0 must be positive",
        (ckpt, f"check_input={tmp_path}/none*.png"): "names no files",
    }
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cases[(ckpt, f"output={blocker}/model.onnx")] = "cannot be written"
    for overrides, message in cases.items():
        with pytest.raises(ExportError, match=message):
            export(export_cfg(*overrides))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing written


def test_files_predict_cannot_run(tmp_path, monkeypatch):
    from seglab.inference.runners import exported_format

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf")
    with pytest.raises(CheckpointError, match="is not an ONNX model onnxruntime can load"):
        seglab.load_model(garbage)
    bare = tmp_path / "bare.onnx"  # a valid ONNX model without seglab's card
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), bare)
    with pytest.raises(CheckpointError, match="carries no seglab model card.*seglab-export"):
        seglab.load_model(bare)
    plain = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(1)}, plain)
    assert exported_format(plain) is None  # a torch.save file is left to the checkpoint reader
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r'needs onnxruntime.*pip install "seglab\[export\]"'):
        seglab.load_model(bare)
