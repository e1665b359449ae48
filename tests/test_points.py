"""Point clouds (scdepth-infer --ply, --fuse): a known depth map and K give points at the 3-D
positions computed by hand, the PLY files parse back (read here with a parser of our own),
and a synthetic scene -- a tilted plane seen by a camera that moves and turns, with stand-in
networks that return its exact depth and relative poses -- fuses into a cloud on the plane,
with a known pixel at its known world point and the trajectory at the cameras' positions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from scdepth import checkpoint, points
from scdepth.cli import infer as infer_cli
from scdepth.data.transforms import MEAN, STD
from scdepth.geometry import mat2euler

H, W = 64, 96
K = np.array([[80.0, 0, 47.5], [0, 76.0, 31.0], [0, 0, 1]])
NORMAL, OFFSET = np.array([0.3, -0.2, 1.0]), 4.0  # the plane n . X = c, in frame 0's camera
FRAMES = 5


def parse_ply(path):
    """(header lines, structured vertices), parsed from the header's own property list."""
    data = path.read_bytes()
    head, _, body = data.partition(b"end_header\n")
    lines = head.decode("ascii").splitlines()
    assert lines[:2] == ["ply", "format binary_little_endian 1.0"]
    types = {"float": "<f4", "uchar": "u1"}
    props = [(ln.split()[2], types[ln.split()[1]]) for ln in lines if ln.startswith("property")]
    count = int(next(ln for ln in lines if ln.startswith("element vertex")).split()[2])
    vertices = np.frombuffer(body, np.dtype(props), count)
    assert len(body) == count * np.dtype(props).itemsize
    return lines, vertices


def xyz_of(v):
    return np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64)


def test_a_known_pixel_lands_at_its_3d_point():
    depth = np.full((H, W), 3.0)
    depth[7, 5] = 2.5
    p = points.backproject(depth, K)
    assert p.shape == (H * W, 3)
    # pixel (u=5, v=7): ((u - cx) / fx, (v - cy) / fy, 1) * depth
    np.testing.assert_allclose(p[7 * W + 5], [(5 - 47.5) / 80 * 2.5, (7 - 31) / 76 * 2.5, 2.5])
    np.testing.assert_allclose(p[0], [-47.5 / 80 * 3, -31 / 76 * 3, 3.0])


def test_ply_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(50, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (50, 3), dtype=np.uint8)
    path = tmp_path / "c.ply"
    path.write_bytes(points.ply_bytes(xyz, rgb, ["units metres", "two\nlines"]))
    lines, v = parse_ply(path)
    assert "comment units metres" in lines and "comment two lines" in lines
    np.testing.assert_array_equal(xyz_of(v), xyz)
    np.testing.assert_array_equal(np.stack([v["red"], v["green"], v["blue"]], 1), rgb)
    back, colours, comments = points.read_ply(path)
    np.testing.assert_array_equal(back, xyz)
    np.testing.assert_array_equal(colours, rgb)
    assert comments == ["units metres", "two lines"]


def test_voxel_grid_averages_per_voxel_in_batches():
    xyz = np.array([[0.1, 0.1, 0.1], [0.3, 0.2, 0.1], [1.2, 0.1, 0.1], [-0.1, 0.1, 0.1]])
    rgb = np.array([[0, 0, 0], [100, 50, 10], [7, 7, 7], [9, 9, 9]], np.uint8)
    one = points.VoxelGrid(0.5)
    one.add(xyz, rgb)
    batched = points.VoxelGrid(0.5, batch=1)  # merged after every add
    for i in range(4):
        batched.add(xyz[i : i + 1], rgb[i : i + 1])
    for grid in (one, batched):
        c, col = grid.points()
        order = np.argsort(c[:, 0])
        np.testing.assert_allclose(c[order], [[-0.1, 0.1, 0.1], [0.2, 0.15, 0.1], [1.2, 0.1, 0.1]])
        np.testing.assert_array_equal(col[order], [[9, 9, 9], [50, 25, 5], [7, 7, 7]])


# --- the synthetic scene ---------------------------------------------------------------------


def rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def camera_to_world(i):
    """Camera i moves right and forward and turns about y (frame 0 is the world)."""
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = rot_y(0.03 * i), [0.12 * i, 0.01 * i, 0.05 * i]
    return T


def plane_depth(i):
    """Depth [H, W] of the plane in camera i: the ray r = K^-1 [u, v, 1] (z = 1) from the
    centre C meets n . (C + t R r) = c at t = (c - n . C) / (n . R r), and t is the depth."""
    T = camera_to_world(i)
    v, u = np.mgrid[:H, :W]
    rays = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3) @ np.linalg.inv(K).T
    t = (OFFSET - NORMAL @ T[:3, 3]) / ((rays @ T[:3, :3].T) @ NORMAL)
    return t.reshape(H, W)


def frame_index(img):
    """The frame a network input shows: every frame is one grey level, 20 + 30 i."""
    return int(round(((img[0, 0, 0, 0] * STD + MEAN) * 255).item() - 20) / 30)


def stand_ins(monkeypatch):
    def depth_net(img):
        assert img.shape == (1, 3, H, W)
        return torch.from_numpy(plane_depth(frame_index(img))).float()[None, None]

    def pose_net(tgt, ref):  # pose_net(frame t+1, frame t) = T_t<-t+1 as [t, euler]
        i, j = frame_index(ref), frame_index(tgt)
        T = np.linalg.inv(camera_to_world(i)) @ camera_to_world(j)
        angles = mat2euler(torch.from_numpy(T[:3, :3]))
        return torch.cat([torch.from_numpy(T[:3, 3]), angles]).float()[None]

    monkeypatch.setattr(checkpoint, "load_depth_model", lambda path, device: (depth_net, (H, W)))
    monkeypatch.setattr(
        checkpoint, "load_pose_model", lambda path, device: (pose_net, (H, W), None)
    )


@pytest.fixture
def scene(tmp_path):
    """FRAMES grey frames of the network's size, with cam.txt beside them."""
    folder = tmp_path / "scene"
    folder.mkdir()
    for i in range(FRAMES):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((H, W, 3), 20 + 30 * i, np.uint8))
    np.savetxt(folder / "cam.txt", K)
    return folder


def run(scene, tmp_path, *extra):
    args = ["x.pt", str(scene), "--ply", str(tmp_path / "ply"), "--fuse", str(tmp_path / "f.ply")]
    assert infer_cli.main([*args, "--no-progress", *extra]) == 0


def test_fused_plane_lies_on_the_plane_and_known_pixels_land(scene, tmp_path, monkeypatch, capsys):
    stand_ins(monkeypatch)
    run(scene, tmp_path, "--voxel", "1e-5")  # voxels far below the pixels' spacing: no merging
    assert "network units" in capsys.readouterr().err
    lines, v = parse_ply(tmp_path / "f.ply")
    cloud = xyz_of(v)
    assert len(cloud) == FRAMES * H * W
    assert np.abs(cloud @ NORMAL - OFFSET).max() / np.linalg.norm(NORMAL) < 1e-4
    assert "comment units network units (no scale known: right up to one unknown factor)" in lines
    u, vv, i = 70, 12, 3  # pixel (70, 12) of frame 3: in its own cloud and in the fused one
    ray = np.linalg.inv(K) @ [u, vv, 1]
    camera_point = ray * plane_depth(i)[vv, u]
    _, frame = parse_ply(tmp_path / "ply" / f"{i:03d}.ply")
    np.testing.assert_allclose(xyz_of(frame)[vv * W + u], camera_point, rtol=1e-5)
    world = camera_to_world(i)[:3, :3] @ camera_point + camera_to_world(i)[:3, 3]
    assert np.linalg.norm(cloud - world, axis=1).min() < 1e-4
    assert (frame["red"] == 20 + 30 * i).all()
    trajectory = np.loadtxt(tmp_path / "f.tum.txt")
    want = np.array([camera_to_world(k)[:3, 3] for k in range(FRAMES)])
    np.testing.assert_allclose(trajectory[:, 1:4], want, atol=1e-5)
    assert cv2.imread(str(tmp_path / "f.png")).shape[2] == 3


def test_intrinsics_are_scaled_to_the_network_resolution(scene, tmp_path, monkeypatch):
    """Frames twice the network's size with their own K (cam.txt): the clouds use K scaled to
    the prediction's resolution (pixel centres at integers: c -> (c + 0.5) / 2 - 0.5)."""
    stand_ins(monkeypatch)
    big = tmp_path / "big"
    big.mkdir()
    for f in sorted(scene.glob("*.png")):
        cv2.imwrite(str(big / f.name), cv2.resize(cv2.imread(str(f)), (2 * W, 2 * H)))
    K2 = np.array(
        [[2 * K[0, 0], 0, 2 * K[0, 2] + 0.5], [0, 2 * K[1, 1], 2 * K[1, 2] + 0.5], [0, 0, 1]]
    )
    np.savetxt(big / "cam.txt", K2)
    run(big, tmp_path, "--voxel", "1e-5")
    lines, v = parse_ply(tmp_path / "f.ply")
    assert np.abs(xyz_of(v) @ NORMAL - OFFSET).max() / np.linalg.norm(NORMAL) < 1e-4
    assert "comment intrinsics fx 80 fy 76 cx 47.5 cy 31 at 96x64" in lines


def test_default_voxels_downsample_and_keep_the_plane(scene, tmp_path, monkeypatch):
    stand_ins(monkeypatch)
    run(scene, tmp_path)
    lines, v = parse_ply(tmp_path / "f.ply")
    cloud = xyz_of(v)
    assert 0 < len(cloud) < FRAMES * H * W
    # a voxel's centroid averages points of one plane: it stays on the plane
    assert np.abs(cloud @ NORMAL - OFFSET).max() / np.linalg.norm(NORMAL) < 1e-4


def test_gt_median_scaling_gives_metres(scene, tmp_path, monkeypatch, capsys):
    """GT = 2 x the prediction in depth/: every cloud is in metres, twice as large."""
    stand_ins(monkeypatch)
    (scene / "depth").mkdir()
    for i in range(FRAMES):
        np.save(scene / "depth" / f"{i:03d}.npy", 2 * plane_depth(i).astype(np.float32))
    run(scene, tmp_path, "--voxel", "1e-5")
    assert "metres (depth x 2, median scaling" in capsys.readouterr().err
    lines, v = parse_ply(tmp_path / "f.ply")
    assert np.abs(xyz_of(v) @ NORMAL - 2 * OFFSET).max() / np.linalg.norm(NORMAL) < 2e-4
    assert any(ln.startswith("comment units metres (depth x 2, median scaling") for ln in lines)
    trajectory = np.loadtxt(tmp_path / "f.tum.txt")
    np.testing.assert_allclose(trajectory[-1, 1:4], 2 * camera_to_world(FRAMES - 1)[:3, 3], 1e-5)


def test_scale_and_max_depth(scene, tmp_path, monkeypatch):
    stand_ins(monkeypatch)
    run(scene, tmp_path, "--scale", "0.5", "--max-depth", "2.1")
    lines, v = parse_ply(tmp_path / "ply" / "000.ply")
    assert "comment units metres (depth x 0.5, --scale)" in lines
    kept = xyz_of(v)
    assert 0 < len(kept) < H * W and kept[:, 2].max() <= 2.1
    np.testing.assert_allclose(kept @ NORMAL, 0.5 * OFFSET, rtol=1e-5)


def test_point_options_are_checked_before_any_network_runs(scene, tmp_path, capsys):
    video = tmp_path / "v.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (W, H))
    w.write(np.zeros((H, W, 3), np.uint8))
    w.release()
    cases = [
        ([str(video), "--ply", str(tmp_path / "p")], "give --cam cam.txt, --fx"),
        ([str(scene), "--fuse", str(tmp_path / "f.xyz")], "must be a .ply file"),
        ([str(scene), "--ply", str(tmp_path / "p"), "--fy", "3"], "--fy/--cx/--cy need --fx"),
        ([str(scene), "--fuse", str(tmp_path / "f.ply"), "--voxel", "0"], "--voxel must be > 0"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit):
            infer_cli.main(["missing.pt", *args, "--no-progress"])
        assert message in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
