"""The pose diagnosis's parts: rotations and translations swapped between two predictions,
directions replaced, and the 7-Scenes section of RESULTS.md replaced beside the others."""

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from experiments import pose_diagnosis as pd  # noqa: E402
from experiments import real  # noqa: E402


def _steps(n, seed):
    rng = np.random.default_rng(seed)
    out = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        out[i, :3, :3] = cv2.Rodrigues(rng.normal(scale=0.05, size=3))[0]
        out[i, :3, 3] = rng.normal(size=3)
    return out


def test_parts_and_directions_are_swapped_as_named():
    a, b = _steps(5, 0), _steps(5, 1)
    mixed = pd.with_parts(a, b)
    np.testing.assert_array_equal(mixed[:, :3, :3], a[:, :3, :3])
    np.testing.assert_array_equal(mixed[:, :3, 3], b[:, :3, 3])
    d = pd.with_direction(a, b)
    length = np.linalg.norm(d[:, :3, 3], axis=1)
    np.testing.assert_allclose(length, np.linalg.norm(b[:, :3, 3], axis=1))
    np.testing.assert_allclose(pd.angle_deg(d[:, :3, 3], a[:, :3, 3]), 0, atol=1e-5)
    np.testing.assert_allclose(pd.angle_deg(np.eye(3), -np.eye(3)), 180)
    np.testing.assert_allclose(pd.angle_deg(np.eye(3), np.roll(np.eye(3), 1, 0)), 90)


def test_each_set_replaces_only_its_own_section(tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n")
    real.replace_section(md, "shared figures", "shared")
    real.replace_section(md, "7scenes figures", "7scenes")
    real.replace_section(md, "new 7scenes figures", "7scenes")
    text = md.read_text()
    assert "shared figures" in text and "new 7scenes figures" in text
    assert text.count("7scenes figures") == 1 and text.startswith("# Results")
