"""The 7-Scenes benchmark's report over seeds: each seed's figures taken from its report, the
mean ± sample std, and the targets counted seed by seed."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/ is not installed

from experiments import real_7scenes  # noqa: E402


def _report(best, last, ate_best):
    depth = [
        {"predictor": "trained (best.pt)", "abs_rel": best, "a1": 0.6, "spread": 0.5},
        {"predictor": "trained (last.pt)", "abs_rel": last, "a1": 0.5, "spread": 0.4},
        {"predictor": "untrained", "abs_rel": 0.31, "a1": 0.55, "spread": 0.1},
        {"predictor": "constant (GT median)", "abs_rel": 0.30, "a1": 0.55, "spread": 0.0},
    ]
    methods = {
        "posenet (best.pt)": ate_best,
        "posenet (last.pt)": ate_best + 0.01,
        "zero": 0.077,
        "constant-velocity": 0.028,
    }
    methods = {k: {"overall": {"ate_snippet": v}} for k, v in methods.items()}
    return {"depth": depth, "pose": {"held-out": {"metrics": {"methods": methods}}}}


def test_seed_figures_take_each_predictor_by_name():
    f = real_7scenes.seed_figures(_report(0.21, 0.24, 0.05))
    assert f["abs_rel_best"] == 0.21 and f["abs_rel_last"] == 0.24
    assert f["ratio"] == pytest.approx(0.21 / 0.30)
    ates = (f["ate_best"], f["ate_last"], f["ate_zero"], f["ate_cv"])
    assert ates == pytest.approx((0.05, 0.06, 0.077, 0.028))
    assert f["spread_best"] == 0.5


def test_seeds_table_has_every_seed_the_mean_and_the_targets_counted():
    per_seed = {
        s: real_7scenes.seed_figures(_report(best, 0.3, ate))
        for s, best, ate in ((0, 0.21, 0.05), (1, 0.24, 0.08), (2, 0.27, 0.02))
    }
    text = real_7scenes.seeds_markdown(per_seed)
    rows = [r for r in text.splitlines() if r.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows] == [
        "| seed",
        "| ---",
        "| 0",
        "| 1",
        "| 2",
        "| mean ± std",
    ]
    assert "| 0.240 ± 0.030 |" in rows[-1]  # abs_rel best.pt: mean and sample std
    assert "met in 1 of 3" in text  # 0.21 / 0.30 = 0.70; 0.80 and 0.90 miss
    assert "below zero motion's 0.0770 in 2 of 3" in text
    assert "below constant velocity's 0.0280 in 1." in text


def test_a_variant_report_names_its_overrides_and_only_7scenes_takes_them(tmp_path, capsys):
    from experiments import real

    report = _report(0.21, 0.24, 0.05)
    for r in report["depth"]:
        r.update(set="7-Scenes held-out", images=20)
    report["pose"]["held-out"]["table"] = "| method |"
    report.update(
        set="7scenes", machine="a CPU", date="2026-12-07", seconds=60.0, reading="read",
        sheet="sheet.png", imports_s={"7scenes": 6.0}, overrides=["image_size=[128,160]"],
        training={"7scenes": {"steps": 3000, "image_size": [128, 160], "seconds": 3600.0}},
    )  # fmt: skip
    title = real.markdown(report).splitlines()[0]
    assert "`python -m experiments.real --set 7scenes --override image_size=[128,160]`" in title
    with pytest.raises(SystemExit):
        real.main(["--data", str(tmp_path), "--override", "epochs=1"])
    assert "--override: only with --set 7scenes" in capsys.readouterr().err


def test_a_finished_run_is_reused_only_for_the_config_asked_for(tmp_path):
    import yaml

    from scdepth import config

    run = tmp_path / "run"
    run.mkdir()
    trained = config.load(real_7scenes.CONFIG, ["data_root=/elsewhere", "seed=1"])
    (run / "config.yaml").write_text(yaml.safe_dump(config.to_dict(trained), sort_keys=False))
    same = config.load(real_7scenes.CONFIG, [f"data_root={tmp_path}", "seed=1"])
    real_7scenes.check_reused(same, run)  # the data folder may have moved
    other = config.load(real_7scenes.CONFIG, ["image_size=[96,128]", "lr=3e-4", "seed=1"])
    with pytest.raises(SystemExit, match=r"other image_size, lr than asked for"):
        real_7scenes.check_reused(other, run)
