from pathlib import Path

import pytest

from scdepth import config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_defaults_are_v3_on_synthetic_and_match_the_shipped_default_config():
    cfg = config.load()
    assert cfg.method == "sc_depth_v3" and cfg.dataset == "synthetic"
    shipped = config.load(Path(__file__).parent.parent / "configs" / "synthetic.yaml")
    assert config.to_dict(shipped) == config.to_dict(cfg)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_loads(path):
    cfg = config.load(path)
    assert cfg.image_size[0] % 32 == 0


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_each_dataset_config_agrees_with_its_spec(path):
    """The presets' image size and frame spacing are the ones specs.py documents (with
    their sources there): e.g. TUM and Bonn take references 10 frames apart."""
    from scdepth.data.specs import get_spec

    cfg = config.load(path)
    spec = get_spec(cfg.dataset)
    assert cfg.skip_frames == spec.skip_frames
    # the synthetic presets and the 7-Scenes CPU benchmark train small on purpose
    if cfg.dataset not in ("synthetic", "7scenes"):
        assert tuple(cfg.image_size) == spec.image_size


def test_method_weights_follow_the_papers():
    assert config.load().loss_weights() == dict(
        photo=1.0, geometry=0.1, smooth=0.0, normal_matching=0.1, mask_rank=0.1, normal_rank=0.1
    )
    v1 = config.load(overrides=["method=sc_depth_v1"]).loss_weights()
    assert (v1["geometry"], v1["smooth"], v1["mask_rank"]) == (0.1, 0.1, 0.0)
    md2 = config.load(overrides=["method=monodepth2"]).loss_weights()
    assert sum(md2.values()) == md2["photo"] == 1.0
    ablated = config.load(overrides=["no_drr=true", "no_lsr=true"]).loss_weights()
    assert ablated["mask_rank"] == ablated["normal_rank"] == ablated["normal_matching"] == 0.0


def test_overrides_are_typed():
    cfg = config.load(
        overrides=[
            "batch_size=2",
            "lr=3e-4",
            "image_size=[64, 96]",
            "no_ssim=true",
            "weights.geometry=0.5",
        ]
    )
    assert cfg.batch_size == 2 and cfg.lr == 3e-4 and cfg.image_size == (64, 96)
    assert cfg.no_ssim is True and cfg.loss_weights()["geometry"] == 0.5


@pytest.mark.parametrize(
    "override, words",
    [
        ("bogus=1", "unknown config key 'bogus'"),
        ("batch_size=two", "batch_size must be a number"),
        ("batch_size=1.5", "batch_size must be an integer"),
        ("image_size=[100, 160]", "multiples of 32"),
        ("method=v9", "method must be one of"),
        ("no_ssim=maybe", "no_ssim must be true or false"),
        ("weights.bogus=1", "unknown terms"),
        ("ssim_window=4", "ssim_window must be odd"),
        ("drr_ratio=1", "drr_ratio must be in (0, 1)"),
        ("epochs=0", "epochs must be >= 1"),
        ("host_memory=mmap", "host_memory must be cache or system, got 'mmap'"),
        ("noequals", "override must be key=value"),
    ],
)
def test_bad_values_raise_clear_errors(override, words):
    with pytest.raises(ValueError) as info:
        config.load(overrides=[override])
    assert words in str(info.value)


def test_bad_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: [unclosed")
    with pytest.raises(ValueError, match="bad.yaml is not valid YAML"):
        config.load(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        config.load(bad)
    with pytest.raises(ValueError, match="cannot read config"):
        config.load(tmp_path / "missing.yaml")
    bad.write_text("lr: -1\n")
    with pytest.raises(ValueError, match="lr must be > 0"):
        config.load(bad)


def test_round_trip_through_a_checkpoint_dict():
    cfg = config.load(overrides=["method=sc_depth_v1", "image_size=[64, 96]"])
    assert config.to_dict(config.from_dict(config.to_dict(cfg))) == config.to_dict(cfg)
