from pathlib import Path

import pytest

from samtrack.pipeline.config import load_config
from samtrack.pipeline.core.errors import ConfigError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _write(tmp_path, text):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    return path


def test_wrong_type_names_file_key_and_value(tmp_path):
    path = _write(tmp_path, "tracker:\n  association:\n    max_age: ten\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: tracker.association.max_age: expected int, got 'ten'"


@pytest.mark.parametrize(("text", "expected"), [
    ("tracker:\n  max_age: 9\n", "tracker.max_age: replaced by tracker.association.max_age"),
    ("tracker:\n  reach: 0\n", "tracker.reach: replaced by tracker.motion.reach"),
    ("tracker:\n  reentry: false\n", "tracker.reentry: replaced by tracker.reentry.enabled"),
    ("tracker:\n  mode: offline\n", "tracker.mode: replaced by tracker.identities"),
])
def test_a_flat_key_of_earlier_versions_names_its_new_place(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, text))


@pytest.mark.parametrize(("text", "expected"), [
    ("tracker:\n  max_agee: 3\n", "tracker.max_agee: unknown key"),
    ("colour: red\n", "colour: unknown key"),
    ("source:\n  name: nope\n", "source.name: unknown source 'nope'"),
    ("source:\n  motion:\n    min_area: 0\n", "source.motion.min_area: input should be greater "
     "than or equal to 1, got 0"),
    ("source:\n  motion:\n    speed: 3\n", "source.motion.speed: unknown key"),
    ("source:\n  sam9: {}\n", "source.sam9: unknown key"),
    ("video:\n  on_bad_frame: explode\n", "video.on_bad_frame: expected one of 'skip' or 'stop', "
     "got 'explode'"),
    ("video:\n  path: /no/such/clip.mp4\n", "video.path: no such file or folder "
     "'/no/such/clip.mp4'"),
    ("device: tpu\n", "device: expected auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    ("output:\n  overwrite: maybe\n", "output.overwrite: expected bool, got 'maybe'"),
    ("- a\n- b\n", "top level must be a mapping"),
    ("video: [\n", "line"),
    ("tracker:\n  embedder: sam2\n", "tracker.embedder: 'sam2' pools SAM2's image-encoder "
     "features, which only source.name: sam2-video with source.sam2-video.expose_features: "
     "true provides"),
])
def test_config_errors_are_one_line_and_name_the_key(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}:")
    assert expected in message
    assert "\n" not in message


def test_missing_config_file():
    with pytest.raises(ConfigError, match=r"nope.yaml: no such config file"):
        load_config("nope.yaml")


def test_defaults_and_overrides(tmp_path):
    path = _write(tmp_path, f"video:\n  path: {tmp_path}\n"
                            "tracker:\n  association:\n    max_age: 4\n")
    config = load_config(path, {"tracker.association.max_age": 9, "source.name": "masks",
                                "source.masks.path": str(tmp_path)})
    assert config.tracker.association.max_age == 9
    assert config.source.name == "masks"
    assert config.source.options().path == str(tmp_path)
    assert config.source.options("motion").min_area == 150  # documented default
    resolved = config.to_dict()
    assert resolved["source"]["motion"]["history"] == 500
    assert resolved["video"]["path"] == str(tmp_path)


def test_no_config_runs_on_defaults():
    config = load_config(None)
    assert config.source.name == "auto" and config.video.path is None


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_example_configs_are_valid(name, tmp_path):
    """Every shipped example validates once its input paths point at something that exists."""
    import yaml

    data = yaml.safe_load((CONFIGS / name).read_text())
    overrides = {"video.path": str(tmp_path)}
    if data.get("eval", {}).get("gt"):
        overrides["eval.gt"] = str(tmp_path)
    config = load_config(CONFIGS / name, overrides)
    assert config.video.path == str(tmp_path)


def test_sam2_embedder_with_a_source_that_exposes_features(tmp_path):
    path = _write(tmp_path, "source:\n  name: sam2-video\n  sam2-video:\n"
                            "    expose_features: true\ntracker:\n  embedder: sam2\n")
    assert load_config(path).tracker.embedder == "sam2"


@pytest.mark.parametrize(("data", "needle"), [
    ({"source": {"motion": {"history": 10 ** 20}}}, "source.motion.history: input should be "
     "less than or equal to 1000000"),
    ({"source": {"motion": {"blur": 10 ** 20}}}, "source.motion.blur"),
    ({"source": {"motion": {"close_kernel": 10 ** 20}}}, "source.motion.close_kernel"),
    ({"source": {"motion": {"prime_repeats": 10 ** 8}}}, "source.motion.prime_repeats"),
    ({"tracker": {"appearance": {"gallery_size": 10 ** 8}}}, "tracker.appearance.gallery_size"),
    ({"source": {"name": ["motion"]}}, "source.name: expected the name of a source"),
    ({"source": {"background": {"samples": 10 ** 6}}}, "source.background.samples"),
])
def test_values_that_size_memory_or_time_are_bounded(data, needle):
    from samtrack.pipeline.config import config_from_dict
    from samtrack.pipeline.core.errors import UserError

    with pytest.raises(UserError) as err:
        config_from_dict(data, "x.yaml")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_kernel_is_never_larger_than_the_frame():
    import numpy as np

    from samtrack.pipeline.sources.motion import kernel_size

    small = np.zeros((90, 160), np.uint8)
    assert kernel_size(1023, small, odd=True) == 89 and kernel_size(5, small) == 5
