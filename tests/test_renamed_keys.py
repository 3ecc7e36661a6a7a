"""Config keys that moved (data.root -> data.dataset.root, data.datasets.* -> data.splits.* /
data.dataset.*): an old override stops with one line naming the new key, not Hydra's bare
"Key 'root' is not in struct"."""

from __future__ import annotations

import pytest

from seglab.config import RenamedKeyError, check_renamed_keys, renamed_key_fix

from .conftest import run_train_script


@pytest.mark.parametrize(
    "override, fix",
    [
        ("data.root=/data/cells", "'data.dataset.root=/data/cells'"),
        ("+data.download=true", "'data.dataset.download=true'"),
        ("data.datasets.train.num_samples=12", "'data.splits.train.num_samples=12' or"),
        ("data.datasets.val.mask_suffix=_m", "'data.dataset.mask_suffix=_m'"),
    ],
)
def test_an_old_key_names_the_new_one(override, fix):
    assert fix in renamed_key_fix(override)
    with pytest.raises(RenamedKeyError, match="was renamed: use"):
        check_renamed_keys(["model=unet", override])


@pytest.mark.parametrize(
    "override", ["data.dataset.root=/x", "data.splits.train.num_samples=3", "-m", "data=folder"]
)
def test_current_keys_pass(override):
    assert renamed_key_fix(override) is None
    check_renamed_keys([override])


def test_train_script_with_the_old_root_key_says_the_new_one(tmp_path):
    result = run_train_script(["data=folder", f"data.root={tmp_path}"], cwd=tmp_path)
    assert result.returncode == 1
    assert f"data.root was renamed: use 'data.dataset.root={tmp_path}'" in result.stderr
    assert "not in struct" not in result.stderr and "Traceback" not in result.stderr
