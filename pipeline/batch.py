"""``samtrack batch``: many clips, each a ``samtrack run``, on a process pool or a Ray cluster.

Why no scheduler of our own: the work is embarrassingly parallel (one clip, one run folder), so
what matters is placing clips on workers, bounding what is in flight, and surviving failures;
``concurrent.futures`` does that on one machine and Ray across machines (with GPU placement).

* Each clip writes its own run folder exactly as ``run`` does (atomic files, INCOMPLETE marker,
  lock). Re-running the same command skips clips whose folder holds a complete run and redoes
  the others (killed, failed, interrupted or missing): resume after a crash or a lost node.
* A failing clip never stops the others; it is listed with its one-line error.
* At most ``workers`` clips are in flight; each worker process keeps its SAM2 model between
  clips (``sam2_sources.shared_model``), so a model loads once per worker, not once per clip.
* One report at the end: per clip and combined metrics (the ``eval`` code, on every clip that
  has ground truth), clips/s, failures; ``batch.json``, ``batch.csv`` and a printed table.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import dataclasses
import glob
import io
import json
import logging
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import yaml
from tqdm import tqdm

from samtrack.eval.data import ground_truth_path, load_tracks
from samtrack.eval.report import evaluate_pairs
from samtrack.pipeline.config import load_config
from samtrack.pipeline.core.configbase import parse_scalar
from samtrack.pipeline.core.errors import InputError, UserError
from samtrack.pipeline.core.formats import write_text_atomic
from samtrack.pipeline.core.runformat import CONFIG, has_summary, read_summary, run_status
from samtrack.pipeline.core.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from samtrack.pipeline.runfolder import check_report_dir
from samtrack.pipeline.runner import run

log = logging.getLogger(__name__)

MANIFEST_SUFFIXES = {".csv", ".txt"}
# short manifest columns for the per-clip settings people vary most; any dotted config key
# (tracker.max_age, video.max_frames...) is accepted as a column too
SHORT_KEYS = {"num_identities": "tracker.num_identities", "identities": "tracker.identities",
              "max_frames": "video.max_frames", "fps": "video.fps", "masks": "source.masks.path"}
METRIC_COLUMNS = ("idf1", "hota", "mota", "idsw", "fp", "fn")


@dataclass(frozen=True)
class Clip:
    """One input: its name (= run folder name), video, ground truth and config overrides."""

    name: str
    video: str
    gt: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # the manifest line it came from (for error messages)
    named: bool = False  # the name was given (a CSV's name column), never derived


@dataclass
class ClipOutcome:
    name: str
    status: str  # done | skipped (complete before) | failed
    run_dir: str
    seconds: float = 0.0
    frames: int = 0
    error: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- inputs
def _is_frame_folder(path: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())


def _clip_from_path(path: Path, gt_root: Path | None, where: str) -> Clip:
    if path.is_dir() and (path / "img1").is_dir():  # a MOTChallenge-style sequence folder
        name, video = path.name, path / "img1"
        own_gt = path if (path / "gt").is_dir() else None
    elif path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES or path.is_file():
        name, video, own_gt = path.stem if path.is_file() else path.name, path, None
    else:
        raise InputError(f"{where}: {path}: no such video, frame folder or sequence")
    gt = None
    if gt_root is not None and (gt_root / name).is_dir():
        gt = str(ground_truth_path(gt_root / name))
    elif own_gt is not None:
        gt = str(ground_truth_path(own_gt))
    return Clip(name, str(video), gt)


def _read_manifest(path: Path, gt_root: Path | None) -> list[Clip]:
    """A ``.txt`` manifest: one path per line (``#`` comments). A ``.csv`` manifest: a header
    with ``path`` and optionally ``name``, ``gt`` and per-clip settings (``num_identities``,
    ``mode``, ``max_frames``, ``fps``, ``masks`` or any dotted config key). Relative paths are
    taken from the manifest's folder."""
    base = path.parent
    clips: list[Clip] = []
    try:  # utf-8-sig: a spreadsheet's CSV starts with a byte-order mark
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a UTF-8 text manifest (byte {exc.start})") from None
    if path.suffix.lower() == ".txt":
        for lineno, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if line and not line.startswith("#"):
                clips.append(_clip_from_path(base / line, gt_root, f"{path}:{lineno}"))
        return clips
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "path" not in reader.fieldnames:
        raise InputError(f"{path}: a CSV manifest needs a header with a 'path' column")
    for lineno, row in enumerate(reader, start=2):
        where = f"{path}:{lineno}"
        if None in row:  # csv puts the cells beyond the header under the key None
            raise InputError(f"{where}: more cells than the header has columns")
        if not (row.get("path") or "").strip():
            raise InputError(f"{where}: empty path")
        clip = _clip_from_path(base / row["path"].strip(), gt_root, where)
        overrides: dict[str, Any] = {}
        gt = clip.gt
        for key, value in row.items():
            value = (value or "").strip()
            if key in ("path", "name") or value == "":
                continue
            if key == "gt":
                gt = str(base / value)
                continue
            dotted = SHORT_KEYS.get(key, key)
            if "." not in dotted:
                raise InputError(f"{where}: unknown column {key!r} (use a dotted config key "
                                 f"or one of {', '.join(sorted(SHORT_KEYS))})")
            overrides[dotted] = _typed(value, dotted, base)
        if "source.masks.path" in overrides:
            overrides["source.name"] = "masks"
        given = (row.get("name") or "").strip()
        clips.append(Clip(run_name(given, where) if given else clip.name, clip.video, gt,
                          overrides, where, named=bool(given)))
    return clips


#: memory one local worker can take (a run with a SAM2 model held): caps --workers
WORKER_MEMORY = 1 << 30


def capped_workers(workers: int) -> int:
    """``--workers`` bounded by the CPUs and by the memory available (one worker per
    ``WORKER_MEMORY``), with a warning when it had to be lowered."""
    cpus = os.cpu_count() or 1
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        free = cpus * WORKER_MEMORY
    cap = max(1, min(cpus, free // WORKER_MEMORY))
    if workers > cap:
        log.warning("--workers %d lowered to %d (%d CPUs, %.1f GB free)", workers, cap, cpus,
                    free / (1 << 30))
        return int(cap)
    return workers


def run_name(name: str, where: str) -> str:
    """A clip's run folder name, confined to ``--out``: one plain path component (no
    separator, not ``.`` or ``..``, not absolute, not hidden), or a one-line error."""
    plain = name and name not in (".", "..") and not name.startswith(".") and \
        "/" not in name and "\\" not in name and "\0" not in name
    if not plain:
        raise InputError(f"{where}: name {name!r} must be a plain folder name inside --out "
                         "(no '/', '\\', '.', '..' or leading dot)")
    return name


def _typed(value: str, key: str, base: Path) -> Any:
    """A CSV cell as the scalar it spells (``2`` -> 2, ``offline``, ``null``; never YAML, see
    :func:`parse_scalar`); paths relative to the manifest."""
    parsed = parse_scalar(value)
    if key.endswith(".path") and isinstance(parsed, str):
        return str(base / parsed)
    return parsed


def discover_clips(inputs: list[str], gt_root: str | None = None) -> list[Clip]:
    """Clips from video files, frame folders, sequence folders, globs and manifests."""
    root = Path(gt_root) if gt_root else None
    if root is not None and not root.is_dir():
        raise InputError(f"{root}: --gt-root is not a folder")
    clips: list[Clip] = []
    for item in inputs:
        path = Path(item)
        if any(ch in item for ch in "*?[") and not path.exists():
            matches = sorted(glob.glob(item))
            if not matches:
                raise InputError(f"{item}: the pattern matches nothing")
            clips.extend(_clip_from_path(Path(m), root, item) for m in matches)
        elif path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
            clips.extend(_read_manifest(path, root))
        elif path.is_dir() and not (path / "img1").is_dir() and not _is_frame_folder(path):
            # a folder of clips: every video, frame folder or sequence inside it
            inner = sorted(p for p in path.iterdir() if p.is_dir() or
                           p.suffix.lower() in VIDEO_SUFFIXES)
            clips.extend(_clip_from_path(p, root, item) for p in inner)
        else:
            clips.append(_clip_from_path(path, root, item))
    if not clips:
        raise InputError("no clips to process")
    clips = unique_names(clips)
    seen: dict[str, Clip] = {}
    for clip in clips:
        if clip.name in seen:
            raise InputError(f"two inputs would share the run folder '{clip.name}': "
                             f"{seen[clip.name].video} and {clip.video} (name them in a CSV "
                             "manifest)")
        seen[clip.name] = clip
    return clips


def _naming_parts(clip: Clip) -> list[str]:
    """The path components that can name a clip: its video path without the ``img1`` of a
    sequence folder and without a file's suffix, resolved so ``./a`` and ``a`` agree."""
    path = Path(clip.video).resolve()
    if path.name == "img1":
        path = path.parent
    parts = list(path.parts[1:])  # not the root
    if path.is_file() or path.suffix.lower() in VIDEO_SUFFIXES:
        parts[-1] = path.stem
    return parts


def unique_names(clips: list[Clip]) -> list[Clip]:
    """Clips whose derived names collide are named by the shortest end of their paths that
    tells them apart, once the parts they all share at the end are dropped, joined by ``_``:
    ``c1/frames``, ``c2/frames`` -> ``c1``, ``c2``; ``a/c1/frames``, ``b/c1/frames``,
    ``b/c2/frames`` -> ``a_c1``, ``b_c1``, ``b_c2``. Names given in a CSV stay as given."""
    groups: dict[str, list[int]] = {}
    for k, clip in enumerate(clips):
        if not clip.named:
            groups.setdefault(clip.name, []).append(k)
    renamed = list(clips)
    for members in groups.values():
        if len(members) < 2:
            continue
        parts = [_naming_parts(clips[k]) for k in members]
        shared = 0  # trailing components every member has in common
        while all(len(p) > shared + 1 for p in parts) and \
                len({p[-1 - shared] for p in parts}) == 1:
            shared += 1
        stems = [p[:len(p) - shared] for p in parts]
        for length in range(1, max(len(s) for s in stems) + 1):
            names = ["_".join(s[-length:]) for s in stems]
            if len(set(names)) == len(names):
                break
        for k, name in zip(members, names, strict=True):
            renamed[k] = dataclasses.replace(clips[k], name=run_name(name, clips[k].video))
    return renamed


# --------------------------------------------------------------------------- one clip
def run_clip(config_path: str | None, clip: Clip, out_root: str) -> ClipOutcome:
    """Run one clip into ``out_root/<name>``; never raises (a failure is an outcome)."""
    run_dir = Path(out_root) / clip.name
    start = time.perf_counter()
    try:
        result = run(clip_config(config_path, clip, run_dir))
    except UserError as exc:
        return ClipOutcome(clip.name, "failed", str(run_dir), time.perf_counter() - start,
                           error=str(exc))
    except Exception as exc:  # a bug: keep its trace in the outcome, go on with the others
        detail = traceback.format_exc(limit=3).strip().splitlines()[-1]
        return ClipOutcome(clip.name, "failed", str(run_dir), time.perf_counter() - start,
                           error=f"internal error: {type(exc).__name__}: {exc} ({detail})")
    return ClipOutcome(clip.name, "done", str(run_dir), time.perf_counter() - start,
                       frames=result.frames, metrics=dict(result.metrics or {}))


def clip_config(config_path: str | None, clip: Clip, run_dir: Path):
    """The config a clip runs with (the base config, its manifest settings, its folder)."""
    overrides = {"video.path": clip.video, "output.dir": str(run_dir),
                 "output.overwrite": True, "quiet": True, **clip.overrides}
    if clip.gt:
        overrides["eval.gt"] = clip.gt
    return load_config(config_path, overrides)


def _settings(config: dict) -> dict:
    """A resolved config without what does not change a run's results."""
    return {k: v for k, v in config.items() if k not in ("output", "quiet")}


def _skip_if_complete(config_path: str | None, clip: Clip,
                      out_root: Path) -> ClipOutcome | None:
    """The previous outcome of a clip whose run finished with the same inputs and settings
    (a manifest that now points the name at another video, or other settings, redoes it)."""
    run_dir = out_root / clip.name
    if not has_summary(run_dir):
        return None
    state, _ = run_status(run_dir)
    if state != "complete":
        return None  # killed, failed or interrupted: redo it
    try:
        recorded = yaml.safe_load((run_dir / CONFIG).read_text())
    except (OSError, yaml.YAMLError):
        return None
    wanted = clip_config(config_path, clip, run_dir).to_dict()
    if not isinstance(recorded, dict) or _settings(recorded) != _settings(
            yaml.safe_load(yaml.safe_dump(wanted))):
        return None
    summary = read_summary(run_dir)
    return ClipOutcome(clip.name, "skipped", str(run_dir), frames=summary.get("frames", 0),
                       metrics=summary.get("metrics") or {})


def _init_worker(threads: int) -> None:
    """Each worker uses its share of the cores: N workers x all cores would oversubscribe.
    And it dies with the batch: a worker whose parent was killed would otherwise wait on its
    pipe forever, holding its memory."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:  # re-parented: the batch is gone
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="samtrack-parent-watch").start()
    cv2.setNumThreads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


# --------------------------------------------------------------------------- engines
Outcomes = Iterator[ClipOutcome]


def run_local(config_path: str | None, clips: list[Clip], out_root: str,
              workers: int) -> Outcomes:
    """A process pool; at most ``workers`` clips in flight. A worker that dies (out of
    memory, a crash in native code) fails its clip; the pool is rebuilt for the rest."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    pending = list(clips)
    context = multiprocessing.get_context("spawn")  # no fork of a process holding threads
    while pending:
        with cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                    initargs=(threads,)) as pool:
            in_flight: dict[cf.Future, Clip] = {}
            broken = False
            while (pending or in_flight) and not broken:
                while pending and len(in_flight) < workers:
                    clip = pending.pop(0)
                    in_flight[pool.submit(run_clip, config_path, clip, out_root)] = clip
                done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    clip = in_flight.pop(future)
                    try:
                        yield future.result()
                    except cf.process.BrokenProcessPool:
                        broken = True
                        yield ClipOutcome(clip.name, "failed", str(Path(out_root) / clip.name),
                                          error="its worker process died (out of memory?)")
            if broken:
                for future, clip in in_flight.items():
                    future.cancel()
                    yield ClipOutcome(clip.name, "failed", str(Path(out_root) / clip.name),
                                      error="its worker process died (out of memory?)")


def run_ray(config_path: str | None, clips: list[Clip], out_root: str, workers: int,
            address: str | None, gpus_per_clip: float) -> Outcomes:
    """Ray actors, one per worker, each keeping its models between clips; clips declare their
    resources (one CPU; ``gpus_per_clip`` when the config runs on CUDA), so a cluster with GPU
    nodes places SAM2 clips on GPUs. ``address``: ``auto`` or ``ray://host:port`` joins a
    cluster; None starts a local one with ``workers`` CPUs."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise UserError("--engine ray needs the ray extra: pip install 'samtrack[ray]'") from None

    started_here = not ray.is_initialized()
    if started_here:
        if address:
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                # no cluster at that address, or ray:// without the ray[client] package
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else \
                    type(exc).__name__
                raise UserError(f"--address {address}: cannot join a Ray cluster: {first}") \
                    from None
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        worker_cls = ray.remote(ClipWorker).options(num_cpus=1, num_gpus=gpus_per_clip)
        pool = ActorPool([worker_cls.remote(max(1, (os.cpu_count() or 1) // workers))
                          for _ in range(workers)])
        for clip in clips:
            pool.submit(lambda actor, c: actor.run.remote(config_path, c, out_root), clip)
        for clip in clips:
            try:
                yield pool.get_next_unordered()
            except Exception as exc:  # a lost node or a dead actor: the clip is redone later
                yield ClipOutcome(clip.name, "failed", str(Path(out_root) / clip.name),
                                  error=f"ray: {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        if started_here:
            ray.shutdown()


class ClipWorker:
    """A Ray actor: a process that runs clips one after another (models stay loaded)."""

    def __init__(self, threads: int) -> None:
        _init_worker(threads)

    def run(self, config_path: str | None, clip: Clip, out_root: str) -> ClipOutcome:
        return run_clip(config_path, clip, out_root)


# --------------------------------------------------------------------------- the batch
@dataclass
class BatchReport:
    clips: list[ClipOutcome]
    seconds: float
    engine: str
    workers: int
    combined: dict[str, Any] = field(default_factory=dict)
    combined_error: str = ""  # why the combined evaluation failed, if it did

    @property
    def failed(self) -> list[ClipOutcome]:
        return [c for c in self.clips if c.status == "failed"]

    def totals(self) -> dict[str, Any]:
        done = [c for c in self.clips if c.status == "done"]
        frames = sum(c.frames for c in done)
        return {"clips": len(self.clips), "done": len(done),
                "skipped": sum(c.status == "skipped" for c in self.clips),
                "failed": len(self.failed), "seconds": round(self.seconds, 3),
                "clips_per_s": round(len(done) / self.seconds, 4) if self.seconds else None,
                "frames_per_s": round(frames / self.seconds, 2) if self.seconds else None,
                "engine": self.engine, "workers": self.workers}

    def rows(self) -> list[dict[str, Any]]:
        return [{"clip": c.name, "status": c.status, "frames": c.frames,
                 "seconds": round(c.seconds, 3),
                 **{k: c.metrics.get(k) for k in METRIC_COLUMNS}, "error": c.error,
                 "run_dir": c.run_dir} for c in self.clips]

    def write(self, out_root: Path) -> None:
        data = {"totals": self.totals(), "combined_metrics": self.combined,
                "clips": [asdict(c) for c in self.clips]}
        if self.combined_error:
            data["combined_error"] = self.combined_error
        write_text_atomic(out_root / "batch.json", json.dumps(data, indent=2) + "\n")
        buf = io.StringIO()
        rows = self.rows()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["clip"])
        writer.writeheader()
        writer.writerows(rows)
        if self.combined:
            writer.writerow({"clip": "ALL", "status": "combined",
                             **{k: self.combined.get(k) for k in METRIC_COLUMNS}})
        write_text_atomic(out_root / "batch.csv", buf.getvalue())

    def table(self) -> str:
        head = f"{'clip':24s} {'status':8s} {'frames':>6s} {'s':>7s} " + \
            " ".join(f"{k:>6s}" for k in METRIC_COLUMNS)
        lines = [head]
        for c in self.clips:
            values = " ".join(_cell(c.metrics.get(k)) for k in METRIC_COLUMNS)
            lines.append(f"{c.name[:24]:24s} {c.status:8s} {c.frames:6d} {c.seconds:7.1f} "
                         f"{values}")
        if self.combined:
            values = " ".join(_cell(self.combined.get(k)) for k in METRIC_COLUMNS)
            lines.append(f"{'ALL (combined)':24s} {'':8s} {'':6s} {'':7s} {values}")
        t = self.totals()
        lines.append(f"{t['done']} done, {t['skipped']} skipped (complete), {t['failed']} failed"
                     f" in {t['seconds']:.1f} s ({t['clips_per_s']} clips/s, {t['engine']}, "
                     f"{t['workers']} workers)")
        lines.extend(f"  failed: {c.name}: {c.error}" for c in self.failed)
        return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return f"{'-':>6s}"
    return f"{value:6.3f}" if isinstance(value, float) else f"{value:>6}"


def combined_metrics(clips: list[Clip], outcomes: list[ClipOutcome]) -> dict[str, Any]:
    """The ``eval`` code over every clip with ground truth and a finished run: the numbers
    ``samtrack eval`` gives for a folder of these sequences."""
    finished = {o.name: o for o in outcomes if o.status in ("done", "skipped")}
    pairs = {c.name: (load_tracks(c.gt, c.name), load_tracks(finished[c.name].run_dir, c.name))
             for c in clips if c.gt and c.name in finished}
    return evaluate_pairs(pairs).combined if pairs else {}


def run_batch(inputs: list[str], *, config: str | None, out: str, engine: str = "local",
              workers: int = 1, address: str | None = None, gt_root: str | None = None,
              progress: bool = True,
              on_outcome: Callable[[ClipOutcome], None] | None = None) -> BatchReport:
    """Run every clip of ``inputs`` (see :func:`discover_clips`) into ``out/<clip name>``."""
    if workers < 1:
        raise UserError(f"--workers: expected >= 1, got {workers}")
    base = load_config(config, {"video.path": None})  # a bad base config fails before any clip
    clips = discover_clips(inputs, gt_root)
    for clip in clips:  # every clip's settings valid before any clip runs
        if clip.overrides:
            try:
                load_config(config, {**clip.overrides, "video.path": None})
            except UserError as exc:
                message = str(exc).removeprefix("command line: ")
                raise InputError(f"{clip.origin}: {message}") from None
    out_root = Path(out)
    check_report_dir(out_root, "--out")
    workers = capped_workers(workers)
    out_root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    outcomes: list[ClipOutcome] = []
    todo = []
    for clip in clips:
        skipped = _skip_if_complete(config, clip, out_root)
        if skipped is None:
            todo.append(clip)
        else:
            outcomes.append(skipped)
    if engine == "local":
        stream = run_local(config, todo, str(out_root), workers)
    elif engine == "ray":
        gpus = 1.0 if base.device.startswith("cuda") else 0.0
        stream = run_ray(config, todo, str(out_root), workers, address, gpus)
    else:
        raise UserError(f"--engine: expected local or ray, got {engine!r}")
    with tqdm(total=len(clips), initial=len(outcomes), unit="clip", disable=not progress,
              desc="samtrack batch") as bar:
        for outcome in stream:
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            bar.update(1)
    seconds = time.perf_counter() - start
    order = {c.name: k for k, c in enumerate(clips)}
    outcomes.sort(key=lambda o: order[o.name])
    combined: dict[str, Any] = {}
    combined_error = ""
    try:
        combined = combined_metrics(clips, outcomes)
    except UserError as exc:  # the clips' own results stand: the report is written anyway
        combined_error = str(exc)
        log.warning("combined evaluation: %s", exc)
    report = BatchReport(outcomes, seconds, engine, workers, combined, combined_error)
    report.write(out_root)
    return report
