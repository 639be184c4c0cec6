"""``samtrack`` command line: ``run``, ``eval``, ``viz``, ``export``, ``config``, ``demo``,
``batch``, ``live`` and ``bench``.

Every failure caused by the user's input (config, video, mask files, an existing run folder) is a
:class:`~samtrack.pipeline.core.errors.UserError`: one line ``samtrack: error: ...`` naming the
culprit, exit code 2. Anything else is a bug: its traceback is printed and the exit code is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from samtrack.eval.bench.harness import main as bench_main
from samtrack.eval.report import evaluate_paths
from samtrack.pipeline.batch import run_batch
from samtrack.pipeline.config import EvalConfig, VizConfig, config_reference, load_config
from samtrack.pipeline.core import __version__
from samtrack.pipeline.core.configbase import format_error
from samtrack.pipeline.core.errors import UserError
from samtrack.pipeline.core.runformat import is_run_folder, read_summary, run_status
from samtrack.pipeline.demo import format_metrics
from samtrack.pipeline.demo import main as demo_main
from samtrack.pipeline.exports import EXPORTERS, ExportRun, export
from samtrack.pipeline.outputs import default_run_dir
from samtrack.pipeline.render import VizOptions, render
from samtrack.pipeline.runfolder import check_report_dir
from samtrack.pipeline.runner import RunResult, run

# `samtrack live` needs the live extra (FastAPI, uvicorn); every other command runs without it
LIVE_EXTRA_MODULES = {"fastapi", "starlette", "uvicorn", "websockets", "h11"}
LIVE_EXTRA_MISSING: str | None = None
try:
    import uvicorn

    from samtrack.pipeline.live.guard import KEEP_ALIVE, header_timeout_protocol, is_loopback
    from samtrack.pipeline.live.server import check_port, create_app
    from samtrack.pipeline.live.session import LiveSession
    from samtrack.pipeline.live.stream import LiveStream, silence_opencv
except ModuleNotFoundError as missing:
    if missing.name is None or missing.name.split(".")[0] not in LIVE_EXTRA_MODULES:
        raise
    LIVE_EXTRA_MISSING = missing.name

log = logging.getLogger("samtrack")

EXIT_OK, EXIT_BUG, EXIT_BAD_INPUT, EXIT_SOME_FAILED = 0, 1, 2, 4


def _default(model: type[BaseModel], key: str) -> Any:
    """An option's default, from the config model (stated once, there)."""
    return model.model_fields[key].default


def _help(model: type[BaseModel], key: str) -> str:
    return (model.model_fields[key].description or "").replace("%", "%%")


def _validate(model: type[BaseModel], flags: str, **values: Any) -> None:
    """Command-line values checked by the same rules as the config keys they stand for."""
    try:
        model(**values)
    except ValidationError as exc:
        raise UserError(f"{flags}: {format_error(exc.errors()[0])}") from None


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:  # 0: any free port
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return port


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="segment, track and write a run folder",
        description="Run the pipeline on one clip. Options given here override the YAML config; "
        "without --config every option has its documented default (see configs/*.yaml).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", metavar="YAML", help="run config file (see configs/)")
    p.add_argument("--video", metavar="PATH", help="video file (mp4/avi/mov) or folder of "
                   "jpg/png frames (overrides video.path)")
    p.add_argument("--source", metavar="NAME", help="mask source: auto (default: background "
                   "for a still camera, else motion), background (lab arenas), motion "
                   "(background subtraction), masks (precomputed), sam2-video (SAM2 masklets) "
                   "or sam2-auto (SAM2 automatic masks per frame) (overrides source.name)")
    p.add_argument("--masks", metavar="PATH", help="precomputed masks: PNG ID-map folder, MOTS "
                   "or MOTChallenge txt; selects the 'masks' source")
    p.add_argument("--model", metavar="NAME", help="SAM2 sources: sam2.1_hiera_t/s/b+/l "
                   "(or tiny/small/base_plus/large)")
    p.add_argument("--checkpoint", metavar="PATH", help="SAM2 sources: checkpoint file "
                   "(default checkpoints/<file of the model>)")
    p.add_argument("--gt", metavar="PATH", help="ground truth to evaluate the run against "
                   "(overrides eval.gt)")
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/<video name>)")
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace an existing run folder (only once the new run has finished)")
    p.add_argument("--max-frames", type=int, metavar="N", help="process only the first N frames")
    p.add_argument("--num-identities", type=int, metavar="K", help="exactly K individuals "
                   "(overrides tracker.num_identities)")
    p.add_argument("--offline", action="store_true", default=None, help="re-link identities "
                   "over the whole clip at the end (tracker.identities: offline)")
    p.add_argument("--viz", action="store_true", default=None, help="render viz/ (trails, "
                   "timeline, gallery) at the end (viz.render: true)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (model-based sources)")
    p.add_argument("--quiet", action="store_true", default=None,
                   help="no progress bar; only warnings, errors and the final summary line")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="MOT metrics of predictions against ground truth",
        description="Score predicted tracks against ground truth. Both sides may be a PNG "
        "ID-map folder (mask IoU), a MOTS txt (mask IoU), a MOTChallenge txt (box IoU) or a "
        "samtrack run folder.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--gt", required=True, metavar="PATH", help="ground truth: a sequence "
                   "(PNG folder, MOTS txt, MOT txt, <seq>/ with gt/; points: SLEAP .slp, CSV "
                   "frame,track_id,x,y, idtracker.ai .npy, frame,id,x,y txt) or a folder of "
                   "<seq>/gt/")
    p.add_argument("--pred", required=True, metavar="PATH", help="predictions: one sequence, "
                   "or for a folder of sequences a folder with <seq>.txt or <seq>/ runs")
    p.add_argument("--iou", type=float, default=_default(EvalConfig, "iou"),
                   help=_help(EvalConfig, "iou"))
    p.add_argument("--radius", type=float, default=_default(EvalConfig, "radius"),
                   help=_help(EvalConfig, "radius"))
    p.add_argument("--preproc", choices=["auto", "off", "mot15", "mot17", "mot20"],
                   default="auto", help="MOTChallenge ground-truth preprocessing as TrackEval "
                   "does it (auto: on for MOTChallenge txt ground truth)")
    p.add_argument("--out", metavar="DIR", help="write metrics.json, metrics.csv, eval.json and "
                   "switches.csv here (default: <run>/eval when --pred is a samtrack run)")
    p.add_argument("--format", choices=["table", "json"], default="table",
                   help="table for people, json (one object) for scripts")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="score a run folder that did not finish (INCOMPLETE, failed or "
                   "interrupted): its frames so far; the report says it is partial")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="generate a two-sheep clip and run everything on it (no download)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="demo_output", metavar="DIR", help="where to write")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_viz(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "viz", help="render trails video, paths, timeline and gallery of a run",
        description="Render a run folder into trails.mp4, trails.png, timeline.png, "
        "gallery.png (and binary.mp4 on request).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a samtrack run folder")
    p.add_argument("--out", metavar="DIR", help="output folder (default RUN_DIR/viz)")
    p.add_argument("--video", metavar="PATH", help="the run's video, if it moved")
    p.add_argument("--gt", metavar="PATH", help="ground truth: adds the ground-truth panel "
                   "(coloured by predicted id, switches marked) to timeline.png")
    p.add_argument("--side-by-side", action="store_true",
                   help="trails.mp4 with the source's raw ids left, samtrack's right")
    p.add_argument("--trail-length", type=int, default=_default(VizConfig, "trail_length"),
                   help=_help(VizConfig, "trail_length"))
    p.add_argument("--scale", type=float, default=_default(VizConfig, "scale"),
                   help=_help(VizConfig, "scale"))
    p.add_argument("--allow-incomplete", action="store_true",
                   help="render a run folder that did not finish (INCOMPLETE or failed)")
    p.add_argument("--binary", nargs="?", const=-1, type=int, metavar="ID",
                   help="also write binary.mp4: ID (or the largest object) white on black")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_export(sub: argparse._SubParsersAction) -> None:
    formats = "\n".join(f"  {name:5s} {spec.filename:17s} {spec.description}"
                         for name, spec in EXPORTERS.items())
    p = sub.add_parser(
        "export", help="write a run's identities as CSV, npz, HDF5, SLEAP, COCO or CVAT",
        description=f"Write a run folder's tracks in another tool's format.\n\n{formats}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a samtrack run folder")
    p.add_argument("--format", "-f", dest="formats", action="append", required=True,
                   choices=EXPORTERS.names(), help="repeat for several")
    p.add_argument("--out", metavar="PATH", help="file (one format) or folder "
                   "(default RUN_DIR/exports/)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config", help="print the resolved config (every default spelled out) or the reference",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", metavar="YAML", help="a run config to resolve")
    p.add_argument("--reference", action="store_true",
                   help="every key with its default and meaning, as Markdown")


def _add_batch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch", help="run many clips (process pool or Ray), resumable, one combined report",
        description="Run every clip of INPUTS into OUT/<clip name>, as `samtrack run` would. "
        "INPUTS: video files, frame folders, sequence folders (<seq>/img1, <seq>/gt), folders "
        "of clips, globs, or a .txt (one path a line) / .csv manifest (path, name, gt, "
        "num_identities, mode, max_frames, fps, masks or any dotted config key). Re-running "
        "skips clips whose run is complete and redoes the rest. Exit code 0, or 4 when some "
        "clips failed (each listed with its error).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--config", metavar="YAML", help="base run config for every clip")
    p.add_argument("--out", default="runs", metavar="DIR", help="one run folder per clip here, "
                   "plus batch.json and batch.csv")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: a process pool on this machine; ray: Ray tasks (the "
                   "samtrack[ray] extra)")
    p.add_argument("--workers", type=int, default=1, help="clips in flight at once")
    p.add_argument("--address", metavar="ADDR", help="ray: auto or ray://host:port to join a "
                   "cluster (default: start a local one)")
    p.add_argument("--gt-root", metavar="DIR", help="ground truth: DIR/<clip name>/gt/ per "
                   "clip; each clip is scored and the report combines them")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_live(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "live", help="track a camera, stream or file in real time, steered from a web page",
        description="Track a live source with the configured mask source and the online "
        "tracker, serve a page (http://HOST:PORT/) to select, remove, name and correct "
        "identities, and write the run folder as the stream goes. Ctrl-C stops it; the run "
        "folder stays valid.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--video", required=True, metavar="SOURCE", help="camera index (0), "
                   "rtsp:// or http:// stream, or a video file / frame folder")
    p.add_argument("--config", metavar="YAML", help="run config (source, tracker, output)")
    p.add_argument("--source", metavar="NAME", help="mask source (overrides source.name)")
    p.add_argument("--masks", metavar="PATH", help="precomputed masks (selects 'masks')")
    p.add_argument("--realtime", action="store_true", help="play a file at its own frame "
                   "rate, dropping frames the pipeline cannot keep up with (as a camera)")
    p.add_argument("--host", default="127.0.0.1", help="address the page listens on")
    p.add_argument("--port", type=_port, default=8000,
                   help="port of the page (0-65535; 0: any free one)")
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/<source name>)")
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace a previous run folder")
    p.add_argument("--paused", action="store_true", help="start paused (resume on the page)")
    p.add_argument("--exit-at-end", action="store_true",
                   help="stop serving when the stream ends (default: keep the page up)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="benchmark samtrack, the raw source ids and peer trackers (one table)",
        description="Same as `python -m samtrack.eval.bench`; every option is passed on (see "
        "`samtrack bench --help`).", add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER, help="options for eval.bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="samtrack",
        description="Stable identities for look-alike objects: segment a clip (SAM2 or a "
        "weight-free source), track with re-identification, evaluate and visualise.")
    parser.add_argument("--version", action="version", version=f"samtrack {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_run(sub)
    _add_eval(sub)
    _add_viz(sub)
    _add_export(sub)
    _add_config(sub)
    _add_demo(sub)
    _add_batch(sub)
    _add_live(sub)
    _add_bench(sub)
    return parser


def run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line options as dotted config keys (only those actually given)."""
    o: dict[str, Any] = {}
    if args.video is not None:
        o["video.path"] = args.video
    if args.source is not None:
        o["source.name"] = args.source
    if args.masks is not None:
        o["source.name"] = "masks"
        o["source.masks.path"] = args.masks
    for key in ("model", "checkpoint"):
        value = getattr(args, key)
        if value is not None:  # both SAM2 sections: the one selected is the one used
            o[f"source.sam2-video.{key}"] = value
            o[f"source.sam2-auto.{key}"] = value
    if args.gt is not None:
        o["eval.gt"] = args.gt
    if args.out is not None:
        o["output.dir"] = args.out
    if args.overwrite:
        o["output.overwrite"] = True
    if args.max_frames is not None:
        o["video.max_frames"] = args.max_frames
    if args.num_identities is not None:
        o["tracker.num_identities"] = args.num_identities
    if args.offline:
        o["tracker.identities"] = "offline"
    if args.viz:
        o["viz.render"] = True
    if args.device is not None:
        o["device"] = args.device
    if args.quiet:
        o["quiet"] = True
    return o


def _cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config, run_overrides(args))
    if config.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    result = run(config)
    for line in closing_summary(result, rendered=config.viz.render):
        print(f"samtrack: {line}")
    return EXIT_OK


STAGES = ("decode", "source", "track", "write")


def closing_summary(result: RunResult, *, rendered: bool = False) -> list[str]:
    """What a finished run did, how fast, where its outputs are and what to run next."""
    summary = read_summary(result.out_dir)
    identities = summary.get("identities", {}).get("num_identities")
    who = f"{len(result.track_ids)} identities" if identities is None else \
        f"{identities} identities ({len(result.track_ids)} ids shown)"
    lines = [f"{result.frames} frames, {result.objects} masks, {who}"
             + (f", {len(result.skipped_frames)} frames skipped" if result.skipped_frames
                else "")]
    kinds: dict[str, int] = {}
    for repair in result.repairs:
        kinds[repair["kind"]] = kinds.get(repair["kind"], 0) + 1
    if kinds:
        lines.append(f"repairs: {len(result.repairs)} ("
                     + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items()))
                     + ")")
    else:
        lines.append("repairs: none")
    ms = {k: 1000 * result.timing.get(k, 0.0) / max(result.frames, 1) for k in STAGES}
    total = sum(ms.values())
    lines.append("ms/frame: " + ", ".join(f"{k} {v:.1f}" for k, v in ms.items())
                 + f"; total {total:.1f} ({1000 / max(total, 1e-9):.1f} frames/s)")
    if result.metrics:
        lines.append(format_metrics(result.metrics))
    files = sorted(p.name + ("/" if p.is_dir() else "") for p in result.out_dir.iterdir()
                   if not p.name.startswith("."))
    lines.append(f"outputs in {result.out_dir}: {', '.join(files)}")
    next_steps = [] if rendered else [f"samtrack viz {result.out_dir}"]
    if result.metrics is None:
        next_steps.append(f"samtrack eval --gt GT --pred {result.out_dir}")
    next_steps.append(f"samtrack export {result.out_dir} --format csv")
    lines.append("next: " + "   |   ".join(next_steps))
    return lines


def _cmd_eval(args: argparse.Namespace) -> int:
    _validate(EvalConfig, "--iou", iou=args.iou)
    _validate(EvalConfig, "--radius", radius=args.radius)
    pred = Path(args.pred)
    state, why = run_status(pred) if is_run_folder(pred) else ("complete", "")
    if state == "unfinished" and not args.allow_incomplete:
        raise UserError(f"{pred}: run did not finish ({why}); its outputs are partial "
                        "(pass --allow-incomplete to score the frames written so far)")
    if args.out is not None:
        check_report_dir(Path(args.out), "--out")
    report = evaluate_paths(args.gt, args.pred, args.preproc, args.iou, args.radius)
    if state != "complete":
        report.settings["partial_run"] = why
        print(f"samtrack: warning: {pred}: partial run ({why}); scored as it is",
              file=sys.stderr)
    out = args.out
    if out is None and is_run_folder(pred):
        out = pred / "eval"

    written = report.write(out) if out is not None else None
    if args.format == "json":
        print(json.dumps(report.to_json()))
    else:
        print(report.table())
        if written is not None:
            print(f"report: {written}/(metrics.json, metrics.csv, eval.json, switches.csv)")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    return demo_main(args.out, quiet=args.quiet)


def _cmd_viz(args: argparse.Namespace) -> int:
    _validate(VizConfig, "--trail-length/--scale", trail_length=args.trail_length,
              scale=args.scale)
    options = VizOptions(out=Path(args.out) if args.out else None,
                         trail_length=args.trail_length, side_by_side=args.side_by_side,
                         scale=args.scale, binary=args.binary is not None,
                         binary_id=None if args.binary in (None, -1) else args.binary,
                         gt=args.gt, progress=not args.quiet)
    written = render(args.run_dir, options, video=args.video,
                     allow_incomplete=args.allow_incomplete)
    for name, path in written.items():
        print(f"{name:13s} {path}")
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    out = args.out
    if out is not None and len(args.formats) > 1 and Path(out).suffix:
        raise UserError(f"--out {out}: give a folder when exporting several formats")
    run = ExportRun(args.run_dir, progress=not args.quiet)
    for fmt in dict.fromkeys(args.formats):
        path = export(run, fmt, out, overwrite=args.overwrite)
        print(f"{fmt:5s} {path}")
    return EXIT_OK


def _cmd_config(args: argparse.Namespace) -> int:
    if args.reference:
        print(config_reference(), end="")
    else:
        print(yaml.safe_dump(load_config(args.config).to_dict(), sort_keys=False), end="")
    return EXIT_OK


def _cmd_batch(args: argparse.Namespace) -> int:
    report = run_batch(args.inputs, config=args.config, out=args.out, engine=args.engine,
                       workers=args.workers, address=args.address, gt_root=args.gt_root,
                       progress=not args.quiet)
    print(report.table())
    print(f"report: {args.out}/batch.json, {args.out}/batch.csv")
    if report.combined_error:  # every clip's result is in the report; only the total is not
        print(f"samtrack: error: combined evaluation: {report.combined_error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_SOME_FAILED if report.failed else EXIT_OK


def _cmd_live(args: argparse.Namespace) -> int:
    if LIVE_EXTRA_MISSING is not None:
        raise UserError(f"samtrack live needs the live extra ({LIVE_EXTRA_MISSING} is not "
                        "installed): pip install 'samtrack[live]'")
    overrides: dict[str, Any] = {"quiet": True}
    if args.source is not None:
        overrides["source.name"] = args.source
    if args.masks is not None:
        overrides.update({"source.name": "masks", "source.masks.path": args.masks})
    if args.out is not None:
        overrides["output.dir"] = args.out
    if args.overwrite:
        overrides["output.overwrite"] = True
    if args.device is not None:
        overrides["device"] = args.device
    config = load_config(args.config, overrides)
    check_port(args.host, args.port)
    silence_opencv()
    stream = LiveStream(args.video, realtime=args.realtime, fps=config.video.fps,
                        max_pixels=config.video.max_pixels)
    out = Path(config.output.dir) if config.output.dir else default_run_dir(stream.name)
    session = LiveSession(config, stream, out, paused=args.paused)
    # beyond this machine, a per-session token guards the page and API (as Jupyter's)
    token = None if is_loopback(args.host) else secrets.token_urlsafe(16)
    server = uvicorn.Server(uvicorn.Config(
        create_app(session, bound=args.host, token=token), host=args.host, port=args.port,
        log_level="warning", timeout_keep_alive=KEEP_ALIVE, http=header_timeout_protocol()))
    if args.exit_at_end:
        def stop_at_end() -> None:
            session.done.wait()
            server.should_exit = True

        threading.Thread(target=stop_at_end, daemon=True).start()
    session.start()
    if token is not None:
        print(f"samtrack live: warning: --host {args.host} listens beyond this machine: "
              "anyone who can reach it and has the token below can steer this run", flush=True)
    url = f"http://{args.host}:{args.port}/" + (f"?token={token}" if token else "")
    print(f"samtrack live: {url} (run folder {out}; Ctrl-C stops)", flush=True)
    # uvicorn returns on Ctrl-C or SIGTERM after a graceful shutdown, then re-raises the
    # signal to the handler it found: main's SIGTERM handler raises KeyboardInterrupt as
    # Ctrl-C does, so both end in the normal end of a live run below (not exit 143 with an
    # unfinished folder)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    session.stop()
    session.join(60)
    s = session.stats()
    print(f"samtrack live: {s['frames']} frames ({s['segmented']} segmented, {s['dropped']} "
          f"dropped), median latency {s['latency_ms']} ms -> {out}")
    if session.error:
        print(f"samtrack: error: {session.error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _cmd_bench(args: argparse.Namespace) -> int:
    rest = list(args.args)
    return bench_main(rest[1:] if rest[:1] == ["--"] else rest)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _bench_arguments(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """``samtrack [--debug] bench ARGS``: ARGS go to eval.bench as written. Why here:
    argparse's REMAINDER does not take an option that comes first (``samtrack bench --sets
    lookalike``), and the main parser refused it as unrecognised, ``--help`` included."""
    for i, arg in enumerate(argv):
        if arg == "bench":
            return argv[:i + 1], argv[i + 1:]
        if not arg.startswith("-"):
            break
    return argv, None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    own, bench_args = _bench_arguments(sys.argv[1:] if argv is None else list(argv))
    args = parser.parse_args(own)
    if bench_args is not None:
        args.args = bench_args
    # Our own packages log at INFO; libraries (motmetrics logs timings at INFO) only warnings.
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="samtrack: %(levelname)s: %(message)s")
    for name in ("samtrack",):
        logging.getLogger(name).setLevel(logging.DEBUG if args.debug else logging.INFO)
    commands = {"run": _cmd_run, "eval": _cmd_eval, "demo": _cmd_demo, "bench": _cmd_bench,
                "viz": _cmd_viz, "export": _cmd_export, "config": _cmd_config,
                "batch": _cmd_batch, "live": _cmd_live}
    # SIGTERM ends every command as Ctrl-C does (run and live refine it to finish their
    # folders): a batch writes nothing half, its workers follow it
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        print("samtrack: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `samtrack ... | head -1`: the reader has all it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is silent
        return EXIT_OK
    except UserError as exc:  # the user's input: one line naming the culprit
        if args.debug:
            raise
        print(f"samtrack: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception:  # a bug in samtrack: keep the traceback, it is what a report needs
        traceback.print_exc()
        print("samtrack: internal error (a bug; please report it with the traceback above)",
              file=sys.stderr)
        return EXIT_BUG
