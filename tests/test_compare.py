"""``seglab-compare``: leaderboard, differing hyperparameters and curves of finished runs."""

import csv
import shutil
from pathlib import Path

import pytest
from PIL import Image

from seglab.compare import curve_metric, differing_keys, is_location, main, pick
from seglab.tracking.run_info import flatten

from .conftest import TINY, run_train_script
from .helpers.runs import metric_rows

LRS = ("0.1", "0.03", "0.01")


def best_val_dice(run_dir: Path) -> float:
    """The highest val/dice of a run, read straight from its CSV (independent of compare.py)."""
    return max(float(row["val/dice"]) for row in metric_rows(run_dir) if row["val/dice"])


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def read_markdown_table(path: Path) -> list[dict[str, str]]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]
    header, separator, *rows = split
    assert all(set(cell) <= set("-:") for cell in separator)
    assert all(len(row) == len(header) for row in rows)
    return [dict(zip(header, row, strict=True)) for row in rows]


# -- pure logic, no training ------------------------------------------------------------------


def test_flatten_nested_dicts_and_lists():
    cfg = {"a": {"b": 1, "c": [2, {"d": 3}]}, "e": None, "f": {}, "g": []}
    assert flatten(cfg, expand_lists=True) == {
        "a.b": 1,
        "a.c.0": 2,
        "a.c.1.d": 3,
        "e": None,
        "f": {},
        "g": [],
    }


def test_differing_keys_skip_equal_values_and_locations():
    runs = [
        {
            "optimizer.lr": 0.01,
            "seed": 42,
            "paths.output_dir": "/a",
            "callbacks.model_checkpoint.dirpath": "/a/ck",
            "logger.csv.save_dir": "/a",
            "trainer.default_root_dir": "/a",
            "ckpt_path": "/a/last.ckpt",
            "hydra.run.dir": "/a",
            "model": "unet",
            "scheduler.T_max": 2,
        },
        {
            "optimizer.lr": 0.001,
            "seed": 42,
            "paths.output_dir": "/b",
            "callbacks.model_checkpoint.dirpath": "/b/ck",
            "logger.csv.save_dir": "/b",
            "trainer.default_root_dir": "/b",
            "ckpt_path": None,
            "hydra.run.dir": "/b",
            "model": "resunet",
            "scheduler.T_max": 3,
            "model.encoder": "resnet18",  # only in one run: differs
        },
    ]
    # keys set on the command line come first, derived ones after, each sorted
    assert differing_keys(runs, first={"optimizer.lr", "model"}) == [
        "model",
        "optimizer.lr",
        "model.encoder",
        "scheduler.T_max",
    ]
    assert differing_keys([runs[0], dict(runs[0])]) == []
    assert differing_keys([runs[0]]) == []


def test_locations_are_not_hyperparameters():
    for key in ("paths.root_dir", "hydra.sweep.dir", "hydra/launcher", "ckpt_path", "a.log_dir"):
        assert is_location(key), key
    for key in ("optimizer.lr", "data.root", "model.depth", "seed"):
        assert not is_location(key), key


def test_metric_value_best_or_last():
    values = [(0, 0.2), (1, 0.5), (2, 0.4)]
    assert pick(values, "val/dice", "max") == (0.5, 1)
    assert pick(values, "val/loss", "min") == (0.2, 0)
    assert pick(values, "val/dice_best", "max") == (0.4, 2)  # the last logged value
    assert pick(values, "test/dice", "max") == (0.4, 2)
    assert pick([], "val/dice", "max") == (None, None)
    assert curve_metric("val/dice_best") == "val/dice"
    assert curve_metric("test/iou") == "val/iou"
    assert curve_metric("val/loss") == "val/loss"


def test_missing_path_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "nope" in err and ".hydra/config.yaml" in err and "csv/metrics.csv" in err


def test_folder_without_runs_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty" / ".hydra").mkdir(parents=True)
    (tmp_path / "empty" / ".hydra" / "config.yaml").write_text("seed: 1\n")  # but no CSV
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "empty"), "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no run folder found" in err and "csv/metrics.csv" in err
    assert not (tmp_path / "leaderboard.md").exists()


# -- three real runs -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A 3-job multirun over the learning rate, trained once for this module."""
    root = tmp_path_factory.mktemp("compare")
    run_train_script(
        # Hydra's flags must come before the overrides
        [
            "-m",
            *TINY,
            "logger=csv",
            f"optimizer.lr={','.join(LRS)}",
            f"hydra.sweep.dir={root}/sweep",
        ],
        cwd=root,
        check=True,
    )
    jobs = sorted(p for p in (root / "sweep").iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2"]
    return root / "sweep"


@pytest.mark.slow
def test_leaderboard_of_a_multirun(sweep, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the runs lie outside the current folder: labelled 0, 1, 2
    out = tmp_path / "out"
    assert main([str(sweep), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "optimizer.lr" in printed and "val/dice_best" in printed

    rows = read_csv(out / "leaderboard.csv")
    expected = sorted((-best_val_dice(sweep / str(j)), str(j)) for j in range(3))
    assert [row["run"] for row in rows] == [job for _, job in expected]
    assert [float(row["val/dice_best"]) for row in rows] == pytest.approx(
        [-value for value, _ in expected], abs=1e-6
    )
    assert [row["rank"] for row in rows] == ["1", "2", "3"]
    # only the swept hyperparameter differs: not the seed, the paths or the checkpoint folders
    assert list(rows[0]) == ["rank", "run", "val/dice_best", "epoch", "optimizer.lr"]
    assert {row["optimizer.lr"] for row in rows} == set(LRS)
    assert {row["run"]: row["optimizer.lr"] for row in rows} == dict(zip("012", LRS, strict=True))

    assert read_markdown_table(out / "leaderboard.md") == [
        {**row, "val/dice_best": f"{float(row['val/dice_best']):.4f}"} for row in rows
    ]
    png = out / "curves.png"
    assert png.stat().st_size > 10_000
    with Image.open(png) as image:
        assert image.format == "PNG" and min(image.size) >= 300


@pytest.mark.slow
def test_top_k_and_default_output_folder(sweep, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([str(sweep / "*"), "--top", "2", "--metric", "val/dice"]) == 0
    capsys.readouterr()
    rows = read_csv(sweep / "leaderboard.csv")  # default --out: the multirun folder
    assert len(rows) == 2
    best = sorted((best_val_dice(sweep / str(j)) for j in range(3)), reverse=True)[:2]
    assert [float(row["val/dice"]) for row in rows] == pytest.approx(best, abs=1e-6)
    assert len(read_markdown_table(sweep / "leaderboard.md")) == 2
    assert (sweep / "curves.png").is_file()


@pytest.mark.slow
def test_run_without_the_metric_is_listed_last(sweep, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(sweep)  # the runs lie outside the current folder
    runs = tmp_path / "runs"
    shutil.copytree(sweep, runs, ignore=shutil.ignore_patterns("*.ckpt", "leaderboard*", "*.png"))
    metrics = runs / "0" / "csv" / "metrics.csv"
    rows = read_csv(metrics)
    kept = [name for name in rows[0] if not name.startswith("val/dice")]
    with open(metrics, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=kept, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    assert main([str(runs), "--out", str(tmp_path)]) == 0
    assert "no val/dice_best" in capsys.readouterr().out
    table = read_csv(tmp_path / "leaderboard.csv")
    assert [row["run"] for row in table][-1] == "0"
    assert table[-1]["rank"] == "-" and table[-1]["val/dice_best"] == ""
    assert "no val/dice_best in csv/metrics.csv" in table[-1]["note"]
    assert [row["rank"] for row in table[:2]] == ["1", "2"]
    assert (tmp_path / "curves.png").is_file()
