"""experiments.best_epoch: the epoch each best.pt criterion picks, and its regret."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from experiments import best_epoch  # noqa: E402


def _run(tmp_path, name, vals):
    run = tmp_path / name
    run.mkdir()
    lines = [{"kind": "train", "step": 1, "loss": 1.0}]
    lines += [{"kind": "val", "step": 10 * (i + 1), **v} for i, v in enumerate(vals)]
    (run / "log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return run


def test_regrets_of_each_criterion(tmp_path):
    run = _run(
        tmp_path,
        "a",
        [
            {"abs_rel": 0.30, "ate_snippet": 0.02, "photo": 0.20},
            {"abs_rel": 0.20, "ate_snippet": 0.04, "photo": 0.25},
            {"abs_rel": 0.25, "ate_snippet": 0.03, "photo": 0.22},
        ],
    )
    r = best_epoch.regrets(run)
    assert r["photo"] == pytest.approx({"epoch": 0, "abs_rel": 1.5, "ate_snippet": 1.0})
    assert r["last"]["epoch"] == 2 and r["last"]["abs_rel"] == pytest.approx(1.25)
    assert r["abs_rel"]["epoch"] == 1 and r["abs_rel"]["ate_snippet"] == pytest.approx(2.0)


def test_runs_without_a_metric_are_left_out_of_its_criterion(tmp_path):
    run = _run(tmp_path, "b", [{"abs_rel": 0.3}, {"abs_rel": 0.2}])
    assert set(best_epoch.regrets(run)) == {"last", "abs_rel"}
    text = best_epoch.table([run])
    assert "| last | 1 |" in text and "| photo |" not in text
