"""The example configs: every one loads, and motion.yaml (which lists every option of the
default source, the tracker, output, viz and eval) states exactly the models' defaults."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from samtrack.pipeline.config import Config, config_from_dict

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
# paths in the examples point at the user's clip; existence is checked elsewhere
PATHS = [("video", "path"), ("eval", "gt"), ("output", "dir")]


def _without_paths(data: dict) -> dict:
    data = copy.deepcopy(data)
    for section, key in PATHS:
        (data.get(section) or {}).pop(key, None)
    masks = (data.get("source") or {}).get("masks") or {}
    masks.pop("path", None)
    return data


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_config_is_valid(path):
    config_from_dict(_without_paths(yaml.safe_load(path.read_text())), str(path))


def test_motion_yaml_states_every_default():
    path = next(p for p in CONFIGS if p.name == "motion.yaml")
    data = _without_paths(yaml.safe_load(path.read_text()))
    defaults = Config().to_dict()
    for section in ("tracker", "output", "viz", "eval", "video"):
        listed = data[section]
        expected = {k: v for k, v in defaults[section].items()
                    if (section, k) not in PATHS}
        assert listed == expected, section
    assert data["source"]["motion"] == defaults["source"]["motion"]
    for key in ("device", "quiet"):
        assert data[key] == defaults[key]


def test_the_tuned_values_file_states_the_code_s_defaults():
    """configs/tuned/defaults.yaml is the record of which defaults were tuned on what; a
    default changed in code without its record (or the reverse) fails here."""
    from pathlib import Path

    import yaml

    from samtrack.reid.config import TrackerConfig

    path = Path(__file__).resolve().parents[1] / "configs" / "tuned" / "defaults.yaml"
    tuned = yaml.safe_load(path.read_text())["tracker"]
    defaults = TrackerConfig().model_dump(mode="json")
    for key, record in tuned.items():
        node = defaults
        for part in key.split("."):
            node = node[part]
        assert node == record["value"], key
        evidence = Path(__file__).resolve().parents[1] / record["evidence"].split(",")[0]
        assert evidence.is_file(), key
