"""seglab.utils.argmax.class_argmax: the same indices as torch's argmax (the faster kernel)."""

from __future__ import annotations

import pytest
import torch

from seglab.utils.argmax import class_argmax


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_class_argmax_equals_argmax_with_ties_and_nan(dtype, channels_last):
    torch.manual_seed(0)
    scores = torch.randn(3, 5, 17, 23).round(decimals=1).to(dtype)  # many ties
    scores[0, 2, 3, 4] = scores[1, 4, 0, 0] = float("nan")
    scores[2, :, 5, 6] = 1.0  # all classes tied: the first
    if channels_last:
        scores = scores.contiguous(memory_format=torch.channels_last)
    got = class_argmax(scores)
    assert got.dtype == torch.long and got.shape == (3, 17, 23)
    assert torch.equal(got, scores.argmax(1))
    assert got[0, 3, 4] == 2 and got[1, 0, 0] == 4 and got[2, 5, 6] == 0
    # over the first dimension, as the predictor uses it on (classes, rows, width)
    assert torch.equal(class_argmax(scores[0], dim=0), scores[0].argmax(0))
