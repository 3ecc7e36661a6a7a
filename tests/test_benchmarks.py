"""The issue-15 benchmark scripts run and report what BENCHMARKS.md reads from them (tiny sizes:
these check the scripts, not the figures)."""

import pytest
import torch

from benchmarks import argmax, flops, overhead, startup

from .conftest import REPO_ROOT, TINY, TINY_DATA, TINY_MODEL


@pytest.fixture
def keeps_torch_threads():
    """The scripts set torch's thread count: the test process gets its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_overhead_times_seglab_and_the_plain_loop_by_wall_clock_and_cpu(keeps_torch_threads):
    args = ["--epochs", "2", "--steps", "2", "--val-batches", "1", *TINY_DATA, *TINY_MODEL]
    result = overhead.main([*args, "logger=csv", "callbacks.progress_bar=null"])
    assert result["epochs"] == 1 and len(result["ratios"]) == len(result["cpu_ratios"]) == 1
    assert result["ratio"] > 0 and result["cpu_ratio"] > 0
    assert result["seglab_cpu_s_per_step"] > 0 and result["plain_cpu_s_per_step"] > 0
    assert "CPU s/step" in overhead.table(result)


def test_flops_profile_splits_the_step_into_convolutions_and_memory_bound_ops(
    keeps_torch_threads, capsys
):
    args = ["--threads", "1", "--size", "32", "--batch", "1", "--steps", "1"]
    (row,) = flops.main([*args, "--models", "unet", "--variants", "NCHW", "--profile", "5"])
    assert row["gflop_per_step"] > 0 and row["utilisation"] > 0
    assert row["cpu_utilisation"] > 0 and row["bf16_cpu_utilisation"] > 0
    printed = capsys.readouterr().out
    assert "| kind of op | self CPU s | share |" in printed
    assert "| convolution / matmul (forward and backward) |" in printed
    assert flops.category("aten::native_batch_norm_backward") == "batch norm"
    assert flops.category("aten::convolution_backward") == flops.category("aten::addmm")


def test_the_optuna_benchmarks_seed_row_gives_the_mean_and_spread_of_each_seeds_search():
    from benchmarks import optuna_search

    rows = [
        {"case": "unpruned-s1", "pruned": 0, "epochs": 160, "wall s": "400", "best": "0.5000"},
        {"case": "unpruned-s2", "pruned": 2, "epochs": 140, "wall s": "500", "best": "0.4000"},
        {"case": "unpruned-s3", "pruned": 1, "epochs": 150, "wall s": "450", "best": "-"},
    ]
    row = optuna_search.seeds_summary("unpruned", rows)
    assert row["case"] == "unpruned: mean (std) of 3 seeds"
    assert row["best"] == "0.4500 (0.0707)"  # a search without a complete trial is left out
    assert row["wall s"] == "450 (50)" and row["pruned"] == "1.0 (1.0)"
    assert set(row) == set(rows[0])


def test_the_argmax_benchmark_times_both_ways_on_each_shape_dtype_and_layout(keeps_torch_threads):
    rows = argmax.main(["--repeats", "1", "--shapes", "2x3x8x8"])
    assert len(rows) == 4  # fp32 / bf16 x NCHW / channels_last
    assert all(row["argmax ms"] > 0 and row["max().indices ms"] > 0 for row in rows)
    assert "| 2x3x8x8 | bfloat16 | channels_last |" in argmax.table(rows)


@pytest.mark.slow
def test_startup_times_the_phases_to_the_first_step_and_to_the_jobs_end():
    result = startup.measure(REPO_ROOT, 1, 3, [*TINY, "logger=csv", "trainer.max_steps=3"])
    phases = result["phases"]
    assert 0 < phases[startup.TOTAL] < phases[startup.JOB_TOTAL]
    assert phases["first training step"] > 0
    assert phases["after the first step: the fit's end, closing the W&B run"] > 0
    table = startup.table([result], ["this #1"])
    assert "| **`python train.py` to the end of the first step** |" in table
    assert "| **`python train.py` to the job's end** |" in table
    assert len(result["imports"]) == 3
    assert set(result["layers"]) == {name for name, _ in startup.LAYERS}
    assert all(seconds > 0 for seconds in result["layers"].values())
    assert "| torch._dynamo (the first torch.optim optimizer imports it) |" in table
