"""The SSIM logged during training is torchmetrics' SSIM, computed faster."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.image import StructuralSimilarityIndexMeasure

from facevae.models.ssim import SSIM, ssim_per_image


def _pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(6, 3, 64, 64, generator=g)
    smooth = torch.nn.functional.avg_pool2d(noise, 5, stride=1, padding=2)
    return [
        (noise, torch.rand(6, 3, 64, 64, generator=g)),  # unrelated images: SSIM near 0
        (smooth, (smooth + 0.05 * torch.randn(6, 3, 64, 64, generator=g)).clamp(0, 1)),  # a noisy copy
        (smooth, smooth),  # identical: exactly 1
        (torch.rand(2, 3, 32, 48, generator=g), torch.rand(2, 3, 32, 48, generator=g)),  # not square
    ]


@pytest.mark.parametrize("case", range(4))
def test_ssim_matches_torchmetrics(case):
    preds, target = _pairs()[case]
    expected = StructuralSimilarityIndexMeasure(data_range=1.0, reduction="none")(preds, target)
    assert torch.allclose(ssim_per_image(preds, target), expected, atol=1e-5)


def test_the_metric_averages_every_image_seen_over_batches():
    ours, theirs = SSIM(data_range=1.0), StructuralSimilarityIndexMeasure(data_range=1.0)
    for preds, target in _pairs()[:3]:
        ours.update(preds, target)
        theirs.update(preds, target)
    assert ours.compute() == pytest.approx(float(theirs.compute()), abs=1e-5)
    ours.reset()
    ours.update(*_pairs()[2])
    assert ours.compute() == pytest.approx(1.0, abs=1e-6)
