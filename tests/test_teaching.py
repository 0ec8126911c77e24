"""Teaching figures' computations (inpaintlib.teaching): the repeated mean filter of report Fig 3."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from inpaintlib import teaching


def _grey_with_hole(size: int = 24, grey: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    mask = torch.ones(1, size, size)
    mask[:, 8:16, 8:16] = 0  # an 8x8 hole
    return torch.full((3, size, size), grey), mask


def test_mean_filter_sequence_fills_the_hole_with_valid_pixels_only():
    image, mask = _grey_with_hole()
    seq = teaching.mean_filter_sequence(image, mask, [2, 0, 1, 2])  # unsorted and repeated on purpose
    assert seq["iterations"] == [0, 1, 2]
    assert [int((m == 0).sum()) for m in seq["mask"]] == [64, 16, 0]  # eq. (7): a 2 px rim per pass
    torch.testing.assert_close(seq["partial"][2], image, rtol=0, atol=1e-6)  # eq. (6): stays grey
    assert seq["standard"][2][:, 0, 0].max() < 0.5  # zero padding darkens the standard filter's border
    sub = teaching.mean_filter_subset(seq, [2])
    assert sub["iterations"] == [2] and torch.equal(sub["mask"][0], seq["mask"][2])
    frame = teaching.mean_filter_frame(seq, 1)
    assert frame.shape == (24, 3 * 24 + 12, 3) and frame.dtype.name == "uint8"
    fig = teaching.plot_mean_filter(seq, show=[0, 2])
    assert len(fig.axes) == 3 * 2
    assert [fig.axes[k].get_ylabel() for k in (0, 2, 4)] == ["standard conv", "partial conv", "mask (partial)"]
    assert fig.axes[5].get_images()[0].get_cmap().name == "gray"  # the mask row in grey
    turned = teaching.plot_mean_filter(seq, show=[0, 2], max_columns=1)  # a row per iteration count
    assert [ax.get_ylabel() for ax in turned.axes[::3]] == ["0 iterations", "2 iterations"]
    assert [ax.get_title() for ax in turned.axes[:3]] == ["standard conv", "partial conv", "mask (partial)"]
    plt.close("all")
    with pytest.raises(ValueError, match="were not computed"):
        teaching.mean_filter_subset(seq, [5])


def test_mean_filter_sequence_refuses_bad_masks_by_name():
    image, mask = _grey_with_hole()
    with pytest.raises(ValueError, match="binary"):
        teaching.mean_filter_sequence(image, mask * 0.5, [1])
    with pytest.raises(ValueError, match="must match"):
        teaching.mean_filter_sequence(image, mask[:, :12, :12], [1])
    with pytest.raises(ValueError, match="non-negative"):
        teaching.mean_filter_sequence(image, mask, [-1])
