"""Training curves drawn with matplotlib: panels, axes, legend; a clear skip without it."""

import cv2
import pytest

from scdepth import plots

HISTORY = {
    "train/loss": [(s, 1.0 / s) for s in range(1, 41)],
    "train/photo": [(s, 0.5 / s) for s in range(1, 41)],
    "train/geometry": [(s, 0.01 / s) for s in range(1, 41)],
    "val/abs_rel": [(10, 0.3), (20, 0.25), (30, float("nan")), (40, 0.2)],
    "val/a1": [(10, 0.5), (20, 0.6), (30, 0.65), (40, 0.7)],
}


def test_panels_group_the_loss_terms_and_split_the_metrics():
    assert plots.curve_panels(HISTORY) == [
        ("training loss (total)", ["train/loss"]),
        ("training loss terms (unweighted)", ["train/geometry", "train/photo"]),
        ("validation abs_rel", ["val/abs_rel"]),
        ("validation a1", ["val/a1"]),
    ]


def test_curves_are_a_grid_of_labelled_panels(tmp_path):
    from matplotlib.figure import Figure

    drawn = []
    real_savefig = Figure.savefig

    def spy(fig, *args, **kwargs):
        drawn.append(fig)
        return real_savefig(fig, *args, **kwargs)

    path = tmp_path / "curves.png"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Figure, "savefig", spy)
        assert plots.save_curves(HISTORY, path, epoch_size=10)
    img = cv2.imread(str(path))
    assert img is not None and img.shape[1] > img.shape[0]  # 2 rows of 3 panels: wide
    axes = [ax for ax in drawn[0].axes if ax.get_visible()]
    assert len(axes) == 4
    for ax in axes:
        assert ax.get_xlabel() == "step (10 per epoch)" and ax.get_title()
    terms = axes[1]
    assert [t.get_text() for t in terms.get_legend().get_texts()] == ["geometry", "photo"]
    assert terms.get_yscale() == "log"
    abs_rel = axes[2]
    assert list(abs_rel.lines[0].get_xdata()) == [10, 20, 40]  # the NaN epoch is left out
    assert "0.25" in [t.get_text() for t in abs_rel.texts]  # values printed at the points
