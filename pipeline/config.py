"""Run configuration: YAML -> validated, typed objects, with errors that name file and key.

Every option has a default, so a config file only states what differs; ``samtrack run`` with no
config at all runs on defaults plus command-line options. Unknown keys and wrong types are errors
(``configs/x.yaml: tracker.association.max_age: expected int, got 'ten'``), because a silently
ignored typo in a tracking config produces plausible but wrong identities.

Source options are validated against the source registry, so a source added later (SAM2, a
plug-in) brings its own ``source.<name>.*`` section without this module changing. Relative paths
are taken from the current directory, as in every command-line tool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from samtrack.eval.points import DEFAULT_RADIUS
from samtrack.pipeline.core.configbase import (
    StrictModel,
    format_error,
    load_yaml_mapping,
    raise_config_error,
    set_dotted,
)
from samtrack.pipeline.core.video import MAX_PIXELS
from samtrack.pipeline.sources import SourceOptions, registered_sources
from samtrack.pipeline.viz import ANNOTATORS, DEFAULT_ANNOTATORS
from samtrack.pipeline.writers import WRITERS, default_writers
from samtrack.reid.config import TrackerConfig


class VideoConfig(StrictModel):
    path: str | None = Field(default=None, description="Video file (mp4/avi/mov) or folder of "
                             "jpg/png frames. Required.")
    fps: float | None = Field(default=None, gt=0, description="Frame rate; None reads it from "
                              "the file (frame folders: 25).")
    on_bad_frame: Literal["skip", "stop"] = Field(
        default="skip", description="A frame that fails to decode: skip it with a warning "
        "naming it, or stop the run with an error.")
    max_frames: int | None = Field(default=None, ge=1, description="Process only the first N "
                                   "frames.")
    max_pixels: int = Field(default=MAX_PIXELS, ge=1, description="Frames larger than this "
                            "(width x height) are refused: memory grows with frame size times "
                            "the frames a source holds. Default 4K UHD.")

    @field_validator("path")
    @classmethod
    def _exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).exists():
            raise ValueError(f"no such file or folder '{value}'")
        return value


class SourceConfig(BaseModel):
    """``source.name`` picks the mask source; ``source.<name>`` holds that source's options.

    Options of every registered source are validated (and their defaults recorded in the resolved
    config), so switching ``name`` never meets a stale, unchecked section.
    """

    model_config = ConfigDict(extra="allow")

    name: str = Field(default="auto", description="Mask source: " + ", ".join(
        f"{n} ({s.summary})" for n, s in sorted(registered_sources().items())))

    def options(self, name: str | None = None) -> SourceOptions:
        name = name or self.name
        value = (self.model_extra or {}).get(name)
        if not isinstance(value, SourceOptions):
            value = registered_sources()[name].options()
        return value


class OutputConfig(StrictModel):
    dir: str | None = Field(default=None, description="Run folder; None = runs/<video name> "
                            "(with -2, -3... appended rather than overwrite a previous run).")
    overwrite: bool = Field(default=False, description="Replace an existing run folder. The old "
                            "run is only removed once the new one has finished.")
    writers: list[str] = Field(
        default_factory=default_writers, description="Output files: " + "; ".join(
            f"{n} ({s.files})" for n, s in WRITERS.items()) + ". Default: every writer "
        "but binary.")

    @field_validator("writers")
    @classmethod
    def _known_writers(cls, value: list[str]) -> list[str]:
        return WRITERS.check(value)


class EvalConfig(StrictModel):
    gt: str | None = Field(default=None, description="Ground truth to score the run against at "
                           "the end: PNG ID-map folder, MOTS txt, MOTChallenge txt, or points "
                           "(SLEAP .slp, CSV, idtracker.ai .npy, frame,id,x,y txt).")
    iou: float = Field(default=0.5, gt=0, le=1, description="IoU (mask, or box for boxes) a "
                       "prediction needs to match a ground-truth object.")
    radius: float = Field(default=DEFAULT_RADIUS, ge=0, le=10000, description="Point ground "
                          "truth: an animal's point within this many pixels of a mask (or "
                          "inside it) matches it.")

    @field_validator("gt")
    @classmethod
    def _exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).exists():
            raise ValueError(f"no such file or folder '{value}'")
        return value


class VizConfig(StrictModel):
    render: bool = Field(default=False, description="After the run, render viz/: trails.mp4, "
                         "trails.png, timeline.png, gallery.png (as `samtrack viz`).")
    side_by_side: bool = Field(default=False, description="trails.mp4 shows the source's raw "
                               "ids left of samtrack's.")
    annotators: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ANNOTATORS), description="What the overlay and "
        "trails videos draw on each object, in order: " + ", ".join(ANNOTATORS.names()) + ".")
    trail_length: int = Field(default=40, ge=1, description="Frames of centroid trail drawn.")
    scale: float = Field(default=1.0, gt=0, le=4, description="Resize factor of rendered "
                         "pictures (for large clips).")

    @field_validator("annotators")
    @classmethod
    def _known_annotators(cls, value: list[str]) -> list[str]:
        return ANNOTATORS.check(value)


class Config(StrictModel):
    """A whole run. Every section and key is optional."""

    video: VideoConfig = Field(default_factory=VideoConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    viz: VizConfig = Field(default_factory=VizConfig)
    device: str = Field(default="auto", description="Compute device for model-based stages: "
                        "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps.")
    quiet: bool = Field(default=False, description="No progress bar; warnings and errors only.")
    # the YAML file this config came from (a run must not write over its own config)
    _config_file: str | None = PrivateAttr(default=None)

    @property
    def config_file(self) -> str | None:
        return self._config_file

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        ok = value in ("auto", "cpu", "cuda", "mps") or (
            value.startswith("cuda:") and value[5:].isdigit())
        if not ok:
            raise ValueError(f"expected auto, cpu, cuda, cuda:N or mps, got '{value}'")
        return value

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form of the resolved config (every default spelled out)."""
        data = self.model_dump(mode="json")
        data["source"] = {"name": self.source.name}
        for name in sorted(registered_sources()):
            data["source"][name] = self.source.options(name).model_dump(mode="json")
        return data


# --------------------------------------------------------------------------- loading
def config_from_dict(data: dict[str, Any] | None, where: str = "<config>") -> Config:
    """Validate plain data (as loaded from YAML) into a :class:`Config`.

    ``where`` names the origin (the YAML path) in error messages.
    """
    data = dict(data or {})
    if not isinstance(data, dict):
        raise_config_error(where, ["top level must be a mapping of sections"])
    source_raw = data.get("source") or {}
    if not isinstance(source_raw, dict):
        raise_config_error(where, [f"source: expected mapping, got {source_raw!r}"])
    registry = registered_sources()
    messages: list[str] = []
    source_options: dict[str, SourceOptions] = {}
    name = source_raw.get("name", "auto")
    if not isinstance(name, str):
        raise_config_error(where, [f"source.name: expected the name of a source, got {name!r}"])
    if name not in registry:
        messages.append(f"source.name: unknown source {name!r}; choose from "
                        f"{', '.join(sorted(registry))}")
    for key, value in source_raw.items():
        if key == "name":
            continue
        if key not in registry:
            messages.append(f"source.{key}: unknown key (source sections: "
                            f"{', '.join(sorted(registry))})")
            continue
        if value is None:
            value = {}
        if not isinstance(value, dict):
            messages.append(f"source.{key}: expected mapping, got {value!r}")
            continue
        try:
            source_options[key] = registry[key].options.model_validate(value)
        except ValidationError as exc:
            messages.extend(format_error(e, ("source", key)) for e in exc.errors())
    try:
        config = Config.model_validate({**data, "source": {"name": name}})
    except ValidationError as exc:
        messages = [format_error(e) for e in exc.errors()] + messages
        raise_config_error(where, messages)
    if messages:
        raise_config_error(where, messages)
    for key, options in source_options.items():
        setattr(config.source, key, options)
    if "sam2" in config.tracker.embedder.split("+") and config.tracker.type == "reid":
        exposing = config.source.name == "sam2-video" and getattr(
            config.source.options("sam2-video"), "expose_features", False)
        if not exposing:
            raise_config_error(where, [
                "tracker.embedder: 'sam2' pools SAM2's image-encoder features, which only "
                "source.name: sam2-video with source.sam2-video.expose_features: true provides"])
    return config


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Load a YAML config (or defaults when ``path`` is None) and apply dotted ``overrides``
    such as ``{"video.path": "clip.mp4", "output.overwrite": True}`` on top."""
    data: dict[str, Any] = {}
    where = "command line"  # no config file: values come from options and defaults
    if path is not None:
        where = str(path)
        data = load_yaml_mapping(path)
    for dotted, value in (overrides or {}).items():
        set_dotted(data, dotted, value)
    config = config_from_dict(data, where)
    if path is not None:
        config._config_file = str(path)
    return config


# --------------------------------------------------------------------------- reference
def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel) and kind is not SourceConfig:
            rows.extend(_rows(kind, f"{prefix}{name}."))
            continue
        default = field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            continue
        text = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append((f"{prefix}{name}", "`" + repr(default).replace("'", "") + "`"
                     if default is not None else "`null`", text))
    return rows


def config_reference() -> str:
    """Markdown: every config key with its default and meaning, from the models themselves
    (``docs/configuration.md``; a test keeps the page equal to this)."""
    sections: list[tuple[str, list[tuple[str, str, str]]]] = []
    for name, field in Config.model_fields.items():
        kind = field.annotation
        if kind is SourceConfig:
            sections.append(("source", _rows(SourceConfig, "source.")))
            for source, spec in sorted(registered_sources().items()):
                sections.append((f"source.{source}: {spec.summary}",
                                 _rows(spec.options, f"source.{source}.")))
        elif isinstance(kind, type) and issubclass(kind, BaseModel):
            sections.append((name, _rows(kind, f"{name}.")))
        else:
            sections.append((name, [row for row in _rows(Config, "") if row[0] == name]))
    lines = ["# Configuration reference", "",
             "Every key of a run config with its default. Generated from the option models "
             "(`samtrack config --reference > docs/configuration.md`); a test fails when "
             "this page and the code differ. A YAML file states only what differs from these.",
             ""]
    for title, rows in sections:
        lines += [f"## {title}", "", "| key | default | meaning |", "|---|---|---|"]
        lines += [f"| `{key}` | {default} | {text} |" for key, default, text in rows]
        lines.append("")
    return "\n".join(lines)
