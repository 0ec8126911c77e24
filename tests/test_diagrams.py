"""Architecture diagrams are drawn from the models' own layer tables (report Figs 1-2)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from inpaintlib.diagrams import architecture_figure  # noqa: E402
from inpaintlib.models import ContextDiscriminator, ContextEncoder, PConvUNet, layer_table  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _by_gid(fig: Figure, prefix: str) -> list:
    return [a for a in fig.axes[0].patches if (a.get_gid() or "").startswith(prefix)]


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("size,layers", [(64, None), (128, 4)])
def test_unet_one_box_per_row_and_a_skip_into_every_decoder_level(size, layers):
    model = PConvUNet(image_size=size, layers=layers, width=4)
    rows = layer_table(model, size)
    fig = architecture_figure(model, size)
    boxes = _by_gid(fig, "layer:")
    assert [b.get_gid() for b in boxes] == [f"layer:{r['name']}" for r in rows]
    assert len(_by_gid(fig, "input")) == 1
    decoders = [r["name"] for r in rows if "concat" in r["layer"]]
    skips = _by_gid(fig, "skip:")
    assert sorted(s.get_gid().split("->")[1] for s in skips) == sorted(decoders)
    # the outermost skip carries the input image (and its mask) to the last decoder level
    assert f"skip:input->{rows[-1]['name']}" in {s.get_gid() for s in skips}
    # each skip joins boxes of the same spatial size, so it is horizontal
    centre_y = {b.get_gid(): b.get_y() + b.get_height() / 2 for b in [*boxes, *_by_gid(fig, "input")]}
    for s in skips:
        src, dst = s.get_gid()[len("skip:"):].split("->")
        src_gid = "input" if src == "input" else f"layer:{src}"
        assert centre_y[src_gid] == pytest.approx(centre_y[f"layer:{dst}"])


def test_unet_skip_labels_count_the_concatenated_channels():
    model = PConvUNet(image_size=64, width=8)
    rows = layer_table(model, 64)
    labels = {t for t in _texts(architecture_figure(model)) if t.startswith("+")}
    expected = {f"+{r['in_channels'] - prev['out_channels']} ch" for prev, r in zip(rows, rows[1:])
                if "concat" in r["layer"]}
    assert labels == expected and "+3 ch" in labels  # the image's 3 channels reach the output


def test_sizes_and_channels_are_labelled_from_the_table():
    model = PConvUNet(image_size=64, width=8)
    fig = architecture_figure(model)
    texts = _texts(fig)
    for row in layer_table(model, 64):
        c, h, w = row["output_shape"]
        assert f"{row['out_channels']} ch · {h}²" in texts, row["name"]
    assert "3 ch + mask\n64²" in texts  # the input box shows the mask travelling with the image
    assert "input 3×64×64" in fig._suptitle.get_text()


def test_pconv_draws_the_mask_path_and_plain_convs_do_not():
    unet = architecture_figure(PConvUNet(image_size=32, width=4))
    rows = layer_table(PConvUNet(image_size=32, width=4), 32)
    # one mask arrow into every partial conv along the data path, one beside every skip
    assert len(_by_gid(unet, "mask:")) == len(rows) + len(_by_gid(unet, "skip:"))
    ce = architecture_figure(ContextEncoder(bottleneck=16, width=4))
    assert _by_gid(ce, "mask:") == [] and _by_gid(ce, "skip:") == []


def test_context_encoder_is_a_chain_through_the_bottleneck():
    model = ContextEncoder(bottleneck=16, width=4)
    rows = layer_table(model)
    fig = architecture_figure(model)
    assert len(_by_gid(fig, "layer:")) == len(rows)
    data = [a.get_gid() for a in _by_gid(fig, "data:")]
    assert data[0] == f"data:input->{rows[0]['name']}"
    assert len(data) == len(rows)
    boxes = {b.get_gid(): b for b in _by_gid(fig, "layer:")}
    bottom = min(boxes.values(), key=lambda b: b.get_y())
    assert bottom.get_gid() == "layer:encoder.bottleneck"
    assert "16 ch · 1²" in _texts(fig)


def test_discriminator_and_fixed_input_sizes():
    fig = architecture_figure(ContextDiscriminator(width=4))
    assert "3 ch · 64²" in _texts(fig)  # its input is the 64x64 patch
    with pytest.raises(ValueError, match="only takes 128 px"):
        architecture_figure(ContextEncoder(bottleneck=16, width=4), image_size=256)


def test_rejects_models_without_a_layer_table():
    with pytest.raises(ValueError, match="layer_table expects"):
        architecture_figure(torch.nn.Linear(2, 2))


def test_report_size_unet_fits_a_book_page_in_two_columns():
    model = PConvUNet(image_size=512, width=4)  # the report's 8 levels; the width does not change the layout
    fig = architecture_figure(model)
    assert fig.get_figwidth() <= 4.5  # shown at about its natural size on a page or a phone: 9-pt text stays legible
    assert min(t.get_fontsize() for t in fig.axes[0].texts) >= 8.5
    boxes = {b.get_gid(): b for b in _by_gid(fig, "layer:")}
    enc_x = {b.get_x() for gid, b in boxes.items() if gid.startswith("layer:enc") and gid != "layer:enc8"}
    dec_x = {b.get_x() for gid, b in boxes.items() if gid.startswith("layer:dec")}
    assert len(enc_x) == 1 and len(dec_x) == 1 and enc_x.pop() < dec_x.pop()  # encoder left, decoder right


def test_gan_training_figure_draws_both_networks_and_both_losses():
    from inpaintlib.diagrams import gan_training_figure

    fig = gan_training_figure(bottleneck=1000)
    gids = {p.get_gid() for p in fig.axes[0].patches}
    assert {"block:context", "block:code", "block:patch", "block:true patch", "block:D"} <= gids
    assert {"flow:patch->D", "flow:true patch->D", "flow:patch<->true patch"} <= gids
    texts = {t.get_gid(): t.get_text() for t in fig.axes[0].texts if t.get_gid()}
    assert "L_rec" in texts["loss:rec"] and "L_adv" in texts["loss:adv"]
    assert any("1000 numbers" in t for t in _texts(fig))
