"""``samtrack live``: the API on a file played as a stream, corrections, faults, a browser."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fake_sam2 import FakeVideoPredictor
from fastapi.testclient import TestClient
from playwright.sync_api import sync_playwright
from test_eval_rules import assert_user_error, cli

from samtrack.eval.bench.scenes import Scene, SceneSpec
from samtrack.eval.report import evaluate_paths
from samtrack.pipeline.config import load_config
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.live.server import create_app
from samtrack.pipeline.live.session import LiveSession
from samtrack.pipeline.live.stream import LiveStream
from samtrack.pipeline.sources.base import SourceContext
from samtrack.pipeline.sources.masks import MasksOptions, MasksSource
from samtrack.pipeline.sources.sam2_sources import Sam2VideoOptions, Sam2VideoSource


def _session(scene: Path, out: Path, **kw) -> LiveSession:
    config = load_config(None, {"source.name": "masks",
                                "source.masks.path": str(scene / "gt" / "masks"),
                                "quiet": True})
    return LiveSession(config, LiveStream(str(scene / "img1")), out, **kw)


def _wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def _gt_ids(run: Path, frame: int) -> dict[int, int]:
    """In the run's MOT output: ground-truth id (the masks' source id) -> shown id."""
    rows = [r for r in (run / "source_mots.txt").read_text().splitlines()
            if int(r.split()[0]) == frame]
    shown = [r for r in (run / "tracks_mots.txt").read_text().splitlines()
             if int(r.split()[0]) == frame]
    by_mask = {r.split()[5]: int(r.split()[1]) for r in shown}
    return {int(r.split()[1]): by_mask[r.split()[5]] for r in rows if r.split()[5] in by_mask}


def test_api_prompt_name_correct_tracks(small_scene, tmp_path):
    out = tmp_path / "live"
    session = _session(small_scene, out, paused=True)
    client = TestClient(create_app(session), base_url="http://127.0.0.1")
    session.start()
    try:
        assert client.get("/status").json()["paused"] is True
        assert "samtrack live" in client.get("/").text and client.get("/app.js").status_code == 200
        client.post("/resume")
        _wait(lambda: session.frames >= 10)
        client.post("/pause")
        time.sleep(0.1)
        tracks = client.get("/tracks").json()
        frame, objects = tracks["frame"], tracks["objects"]
        assert len(objects) == 3
        a, b = objects[0], objects[1]
        # name one identity by clicking on it, then say two objects are swapped
        answer = client.post("/prompt", json={"frame": frame, "x": a["centroid"][0],
                                              "y": a["centroid"][1], "name": "Sheep1"}).json()
        assert answer == {"id": a["id"], "name": "Sheep1"}
        assert client.post("/prompt", json={"frame": frame, "x": b["centroid"][0],
                                            "y": b["centroid"][1]}).status_code == 200
        selected = {a["id"], b["id"]}
        swap = client.post("/correct", json={"frame": frame, "kind": "swap", "points": [
            a["centroid"], b["centroid"]]})
        assert swap.status_code == 200, swap.text
        # bad requests are 4xx with a message
        assert client.post("/prompt", json={"frame": frame, "x": -5, "y": 3}).status_code == 422
        assert client.post("/prompt", json={"frame": 10**6, "x": 1, "y": 1}).status_code == 404
        assert client.post("/correct", json={"frame": frame, "kind": "is", "x": 1, "y": 1,
                                             "name": "Nobody"}).status_code == 404
        assert client.post("/name", json={"id": "x", "name": "A"}).status_code == 422
        client.post("/resume")
        _wait(lambda: session.done.is_set())
        tracks = client.get("/tracks").json()
        assert tracks["names"] == {str(a["id"]): "Sheep1"}
        shown_ids = {o["id"] for o in tracks["objects"]}
        assert shown_ids <= selected  # only selected objects are followed
        assert client.get("/tracks.txt").text.count("\n") > 0
    finally:
        session.stop()
        session.join(30)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["names"] == {str(a["id"]): "Sheep1"}
    log = [json.loads(line) for line in (out / "corrections.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in log] == ["select", "select", "swap"]
    assert all(e["frame"] == frame for e in log)
    # the swap holds from its frame to the end of the stream: ground-truth ids keep the
    # exchanged identities on every later frame
    # (MOT/MOTS frames are 1-based: frame index f is written as f + 1)
    before, after = _gt_ids(out, frame + 1), _gt_ids(out, frame + 2)
    last = _gt_ids(out, summary["frames"])
    swapped = {g: ({a["id"]: b["id"], b["id"]: a["id"]}.get(i, i)) for g, i in before.items()}
    kept = {g: i for g, i in swapped.items() if i in selected}
    assert {g: after[g] for g in kept} == kept
    assert {g: last[g] for g in kept if g in last} == {g: kept[g] for g in kept if g in last}


def test_a_file_that_ends_leaves_an_evaluable_run(small_scene, tmp_path):
    session = _session(small_scene, tmp_path / "live").start()
    session.done.wait(60)
    assert session.error is None
    m = evaluate_paths(small_scene / "gt" / "masks", tmp_path / "live").combined
    assert (m["idf1"], m["idsw"]) == (1.0, 0)


def test_overwrite_replaces_a_previous_live_run_whole(small_scene, tmp_path):
    """A second live run with ``output.overwrite`` replaces the first only once its own
    writers have closed (it once moved the staging folder away before closing them)."""
    out = tmp_path / "live"
    _session(small_scene, out).start().done.wait(60)
    (out / "from_the_first_run").write_text("x")
    config = load_config(None, {"source.name": "masks",
                                "source.masks.path": str(small_scene / "gt" / "masks"),
                                "output.overwrite": True, "quiet": True})
    session = LiveSession(config, LiveStream(str(small_scene / "img1")), out).start()
    session.done.wait(60)
    assert session.error is None
    assert json.loads((out / "summary.json").read_text())["status"] == "complete"
    assert not (out / "from_the_first_run").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".live.")) == [
        ".live.lock"]  # no staging or old folder left behind
    m = evaluate_paths(small_scene / "gt" / "masks", out).combined
    assert (m["idf1"], m["idsw"]) == (1.0, 0)


class _FailingSource(MasksSource):
    """A source that breaks at its 8th frame (a crashed camera driver, a bad model)."""

    def objects_for(self, frame) -> FrameObjects:
        if frame.index == 7:
            raise RuntimeError("the segmenter crashed")
        return super().objects_for(frame)


def test_a_source_that_raises_mid_stream_leaves_a_valid_run(small_scene, tmp_path, capsys):
    out = tmp_path / "live"
    config = load_config(None, {"quiet": True})
    source = _FailingSource(MasksOptions(path=str(small_scene / "gt" / "masks")))
    session = LiveSession(config, LiveStream(str(small_scene / "img1")), out,
                          source=source).start()
    session.done.wait(60)
    assert "the segmenter crashed" in session.error
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["frames"] == 7
    assert "segmenter crashed" in summary["reason"]
    code, err = cli(capsys, "eval", "--gt", str(small_scene / "gt" / "masks"), "--pred",
                    str(out))
    assert code == 0 and "partial run" in err


def test_unreachable_stream_and_busy_port_are_one_line(small_scene, tmp_path, capsys):
    code, err = cli(capsys, "live", "--video", "7", "--port", "0")
    assert_user_error(code, err, "camera 7", "cannot open")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        code, err = cli(capsys, "live", "--video", str(small_scene / "img1"), "--port",
                        str(port))
        assert_user_error(code, err, f"--port {port}", "cannot listen")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_live(args: list[str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "samtrack", "live", *args, "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    base = f"http://127.0.0.1:{port}"

    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(base + "/status", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(proc.communicate()[1])


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_leaves_a_valid_run(small_scene, tmp_path, stop):

    out = tmp_path / "live"
    proc, base = _start_live(["--video", str(small_scene / "img1"), "--masks",
                              str(small_scene / "gt" / "masks"), "--realtime", "--out",
                              str(out)])
    _wait(lambda: httpx.get(base + "/status").json()["frames"] >= 5)
    proc.send_signal(stop)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["end"] == "stopped"
    assert 5 <= summary["frames"] <= 30
    assert evaluate_paths(small_scene / "gt" / "masks", out).combined["idsw"] == 0


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
README_SHOT = Path(__file__).resolve().parents[1] / "docs" / "live.png"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_in_a_real_browser_click_and_name(tmp_path):
    """Headless Chromium opens the page, clicks a sheep, names it; the name is on the picture
    (screenshot) and the API says the identity carries it."""


    scene = Scene(SceneSpec(num_animals=3, num_frames=400, seed=1)).write(tmp_path / "clip")
    proc, base = _start_live(["--video", str(scene / "img1"), "--masks",
                              str(scene / "gt" / "masks"), "--realtime", "--out",
                              str(tmp_path / "live")])
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 900, "height": 700})
            page.goto(base + "/")
            page.wait_for_function("document.getElementById('frame').naturalWidth > 0")

            def inside(o):  # the object is fully in view
                x1, y1, x2, y2 = o["box"]
                return min(x1, y1, 640 - x2, 360 - y2) > 10

            _wait(lambda: sum(map(inside, httpx.get(base + "/tracks").json()["objects"])) >= 2)
            page.click("#pause")
            _wait(lambda: httpx.get(base + "/status").json()["paused"])
            time.sleep(0.3)  # the last frame before the pause reaches the page
            tracks = httpx.get(base + "/tracks").json()
            # the object farthest from the borders: fully in view
            target = max(tracks["objects"], key=lambda o: min(
                o["box"][0], o["box"][1], 640 - o["box"][2], 360 - o["box"][3]))
            page.fill("#name", "Sheep1")
            page.click("#mode-name")
            box = page.locator("#frame").bounding_box()
            scale = box["width"] / page.evaluate("document.getElementById('frame').naturalWidth")
            page.mouse.click(box["x"] + target["centroid"][0] * scale,
                             box["y"] + target["centroid"][1] * scale)
            _wait(lambda: "Sheep1" in httpx.get(base + "/tracks").json()["names"].values())
            # still paused: the frame on screen is re-drawn with the name at once
            page.wait_for_function(
                "[...document.querySelectorAll('#objects td')].some(td => td.textContent == "
                "'Sheep1')", timeout=20000)
            time.sleep(0.3)
            shot = tmp_path / "live.png"
            page.screenshot(path=str(shot))
            browser.close()
        names = httpx.get(base + "/tracks").json()["names"]
        assert names == {str(target["id"]): "Sheep1"}
        objects = httpx.get(base + "/tracks").json()["objects"]
        assert any(o["name"] == "Sheep1" and o["id"] == target["id"] for o in objects)
        assert shot.stat().st_size > 10_000
        if README_SHOT.parent.is_dir() and not README_SHOT.exists():
            shutil.copy(shot, README_SHOT)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # never leave a server behind
            proc.kill()
            proc.communicate()
    np.testing.assert_equal(json.loads((tmp_path / "live" / "summary.json").read_text())[
        "names"], {str(target["id"]): "Sheep1"})


def test_a_click_prompts_sam2_and_selects_the_new_object(tmp_path, small_scene):
    """With sam2-video a click is a point prompt from the next frame on (fake predictor)."""


    fake = FakeVideoPredictor()
    source = Sam2VideoSource(Sam2VideoOptions(checkpoint="unused.pt", auto_seed=False,
                                              window=60), SourceContext("cpu"), predictor=fake)
    session = LiveSession(load_config(None, {"quiet": True}),
                          LiveStream(str(small_scene / "img1")), tmp_path / "live",
                          source=source, paused=True)
    client = TestClient(create_app(session), base_url="http://127.0.0.1")
    session.start()
    try:
        assert session.source.options.window == 1  # live: no frame waits for later ones
        assert source.options.window == 60 and session.source.predictor is fake
        client.post("/resume")
        _wait(lambda: session.frames >= 3)
        client.post("/pause")
        time.sleep(0.1)
        frame = client.get("/tracks").json()["frame"]
        answer = client.post("/prompt", json={"frame": frame, "x": 80, "y": 60,
                                              "name": "Sheep1"}).json()
        assert answer["from_frame"] == frame + 1
        client.post("/resume")
        _wait(lambda: session.done.is_set())
        tracks = client.get("/tracks").json()
    finally:
        session.stop()
        session.join(30)
    assert [o["source_id"] for o in tracks["objects"]] == [answer["sam2_object"]]
    assert [o["name"] for o in tracks["objects"]] == ["Sheep1"]
    prompted = [c for c in fake.calls if c[0] == "add_new_points_or_box"]
    assert len(prompted) == 1 and prompted[0][3] == answer["sam2_object"]
    assert source.options.prompts == [] == session.source.options.prompts  # options untouched


def test_default_source_runs_on_a_stream_without_look_ahead(small_scene, tmp_path):
    # auto cannot sample a stream ahead for a background model: it falls back to motion
    session = LiveSession(load_config(None, {"quiet": True}),
                          LiveStream(str(small_scene / "img1")), tmp_path / "live").start()
    session.done.wait(60)
    assert session.error is None
    assert session.source.chosen is not None and session.source.chosen.name == "motion"


def test_names_given_after_the_stream_ended_reach_the_summary(small_scene, tmp_path):
    session = _session(small_scene, tmp_path / "live").start()
    assert session.done.wait(60) and session.error is None
    ident = json.loads((tmp_path / "live" / "summary.json").read_text())["track_ids"][0]
    session.name(ident, "Late")
    summary = json.loads((tmp_path / "live" / "summary.json").read_text())
    assert summary["names"] == {str(ident): "Late"} and summary["corrections"] == 1
    assert summary["status"] == "complete"


def test_this_is_after_a_swap_on_the_same_paused_frame_changes_the_identity(small_scene,
                                                                           tmp_path):
    """The frame on screen was drawn before the swap: "this is Sheep1" on it must act on the
    identities shown now, not those the frame was drawn with."""
    session = _session(small_scene, tmp_path / "live", paused=True)
    client = TestClient(create_app(session), base_url="http://127.0.0.1")
    session.start()
    try:
        client.post("/resume")
        _wait(lambda: session.frames >= 10)
        client.post("/pause")
        time.sleep(0.1)
        tracks = client.get("/tracks").json()
        frame, (a, b) = tracks["frame"], tracks["objects"][:2]
        assert client.get("/status").json()["frame"] == frame  # one frame number everywhere
        assert client.post("/name", json={"frame": frame, "x": a["centroid"][0],
                                          "y": a["centroid"][1], "name": "Sheep1"}).status_code \
            == 200
        swap = client.post("/correct", json={"frame": frame, "kind": "swap",
                                             "points": [a["centroid"], b["centroid"]]})
        assert swap.json() == {"swapped": [a["id"], b["id"]]}
        shown = {o["id"]: o["centroid"] for o in client.get("/tracks").json()["objects"]}
        assert shown[a["id"]] == b["centroid"]  # Sheep1's identity is now on b's object
        # "no: this one (a's object) is Sheep1", clicked on the same frame
        answer = client.post("/correct", json={"frame": frame, "kind": "is", "x": a["centroid"][0],
                                               "y": a["centroid"][1], "name": "Sheep1"}).json()
        assert answer == {"id": a["id"], "was": b["id"]}
        shown = {o["id"]: o["centroid"] for o in client.get("/tracks").json()["objects"]}
        assert shown[a["id"]] == a["centroid"] and shown[b["id"]] == b["centroid"]
    finally:
        session.stop()
        session.join(30)


def test_each_published_frame_carries_its_own_number(small_scene, tmp_path):
    session = _session(small_scene, tmp_path / "live")
    seen = []
    publish = session._publish

    def record(frame, shown, now, **kw):
        publish(frame, shown, now, **kw)
        message, jpeg = session.frame_message()
        seen.append((frame.index, message["frame"], message["stats"]["frame"],
                     message["size"], jpeg[:2]))

    session._publish = record
    session.start()
    _wait(lambda: session.done.is_set())
    assert seen and all(i == f == s for i, f, s, _, _ in seen)
    assert all(size == [320, 180] and head == b"\xff\xd8" for *_, size, head in seen)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_in_a_real_browser_swap_then_this_is_in_a_small_window(tmp_path):
    """In a window shorter than the frame: the picture is scaled to fit, clicks land on the
    right objects, "swap two" then "this is..." on the same paused frame undoes the swap, and
    the page's frame number is the frame it shows."""
    scene = Scene(SceneSpec(num_animals=3, num_frames=400, seed=1)).write(tmp_path / "clip")
    proc, base = _start_live(["--video", str(scene / "img1"), "--masks",
                              str(scene / "gt" / "masks"), "--realtime", "--out",
                              str(tmp_path / "live")])
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox",
                                                                         "--disable-gpu"])
            page = browser.new_page(viewport={"width": 700, "height": 420})
            page.goto(base + "/")
            page.wait_for_function("document.getElementById('frame').naturalWidth > 0")

            def inside(o):
                x1, y1, x2, y2 = o["box"]
                return min(x1, y1, 640 - x2, 360 - y2) > 10

            for _ in range(20):  # pause on a frame with two objects fully in view
                _wait(lambda: sum(map(inside, httpx.get(base + "/tracks").json()["objects"]))
                      >= 2)
                page.click("#pause")
                _wait(lambda: httpx.get(base + "/status").json()["paused"])
                time.sleep(0.5)
                tracks = httpx.get(base + "/tracks").json()
                if sum(map(inside, tracks["objects"])) >= 2:
                    break
                page.click("#pause")  # resume
            assert f"frame {tracks['frame']} " in page.inner_text("#stats")
            box = page.locator("#frame").bounding_box()
            assert box["height"] <= 420 - 100 and box["width"] <= 700
            assert box["width"] / box["height"] == pytest.approx(640 / 360, rel=0.02)
            a, b = sorted((o for o in tracks["objects"] if inside(o)), key=lambda o: o["id"])[:2]
            scale = box["width"] / 640

            def click(o):
                page.mouse.click(box["x"] + o["centroid"][0] * scale,
                                 box["y"] + o["centroid"][1] * scale)

            page.fill("#name", "Sheep1")
            page.click("#mode-name")
            click(a)
            _wait(lambda: httpx.get(base + "/tracks").json()["names"] == {str(a["id"]):
                                                                          "Sheep1"})
            page.click("#mode-swap")
            click(a)
            click(b)
            _wait(lambda: len(httpx.get(base + "/tracks").json()["corrections"]) == 2)
            page.click("#mode-is")
            click(a)
            _wait(lambda: len(httpx.get(base + "/tracks").json()["corrections"]) == 3)
            browser.close()
        after = httpx.get(base + "/tracks").json()
        assert [c["kind"] for c in after["corrections"]] == ["name", "swap", "is"]
        assert after["corrections"][2]["id"] == a["id"]
        assert after["corrections"][2]["was"] == b["id"]
        shown = {o["id"]: o["centroid"] for o in after["objects"]}
        assert shown[a["id"]] == a["centroid"] and shown[b["id"]] == b["centroid"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_an_engine_that_decides_at_the_end_falls_back_to_the_gallery_rules_live(small_scene,
                                                                                tmp_path):
    config = load_config(None, {"source.name": "masks", "tracker.identities": "offline",
                                "source.masks.path": str(small_scene / "gt" / "masks"),
                                "quiet": True})
    session = LiveSession(config, LiveStream(str(small_scene / "img1")), tmp_path / "live")
    assert not session.tracker.needs_whole_clip
    assert session.tracker.config.identities == "gallery"
    assert config.tracker.identities == "offline"  # the user's options are left as given


@pytest.mark.parametrize(("given", "used"), [(None, True), (False, False), (True, True)])
def test_a_stream_goes_on_while_a_representation_is_learned_unless_told_to_wait(
        small_scene, tmp_path, given, used):
    config = load_config(None, {"source.name": "masks", "tracker.identities": "model",
                                "tracker.learned.enabled": True,
                                "tracker.learned.background": given,
                                "source.masks.path": str(small_scene / "gt" / "masks"),
                                "quiet": True})
    session = LiveSession(config, LiveStream(str(small_scene / "img1")), tmp_path / "live")
    assert session.tracker.resolver.model.train_in_background is used
    assert config.tracker.learned.background is given  # the user's options are left as given
