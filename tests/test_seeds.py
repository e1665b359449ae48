"""The learning benchmark over seeds: statistics, the difference rule, a real two-seed run."""

import json

import pytest

from experiments import seeds


def rec(seed, abs_rel, curve=((10, 0.3), (20, 0.2))):
    region = dict(abs_rel=abs_rel, sq_rel=0.1, rmse=1.0, a1=0.5)
    return {
        "seed": seed,
        "test": {"all": region, "static": region},
        "val_abs_rel": list(curve),
        "last_within_10pct_of_best": True,
    }


def test_summary_is_mean_and_sample_std():
    s = seeds.summary([rec(0, 0.2), rec(1, 0.3), rec(2, 0.4)])
    mean, sd = s["all"]["abs_rel"]
    assert mean == pytest.approx(0.3) and sd == pytest.approx(0.1)
    assert "dynamic" not in s  # no seed had dynamic pixels


def test_a_difference_counts_only_beyond_the_larger_std():
    assert seeds.verdict((0.30, 0.02), (0.33, 0.05)) == "no difference"
    assert seeds.verdict((0.30, 0.02), (0.40, 0.05)) == "lower"
    assert seeds.verdict((0.50, 0.01), (0.40, 0.01)) == "higher"


def test_two_seeds_train_and_report(tiny_synthetic, tmp_path, capsys):
    out = tmp_path / "bench"
    overrides = [
        f"data_root={tiny_synthetic}",
        "image_size=[64,64]",
        "batch_size=2",
        "epochs=2",
        "epoch_size=2",
        "num_workers=0",
        "val_max_frames=4",
        "sheet_frames=2",
    ]
    assert seeds.main(["--out", str(out), "--seeds", "2", *overrides]) == 0
    data = json.loads((out / "seeds.json").read_text())
    assert [r["seed"] for r in data["records"]] == [0, 1]
    for r in data["records"]:
        assert len(r["val_abs_rel"]) == 2  # one validation per epoch
        assert r["test"]["all"]["abs_rel"] > 0
    a, b = (r["test"]["all"]["abs_rel"] for r in data["records"])
    assert a != b  # the seeds differ
    assert (out / "seeds.png").is_file() and "± " in (out / "seeds.md").read_text()
    before = (out / "seed0" / "last.pt").stat().st_mtime_ns
    assert seeds.main(["--out", str(out), "--seeds", "2", *overrides]) == 0  # reused
    assert (out / "seed0" / "last.pt").stat().st_mtime_ns == before
