"""Rendering a 20-frame generated scene, checked pixel by pixel where it matters."""

import json
import shutil

import cv2
import numpy as np
import pytest

from samtrack.eval.bench.scenes import Scene, SceneSpec
from samtrack.pipeline.config import load_config
from samtrack.pipeline.core.formats import read_id_map
from samtrack.pipeline.render import (
    RunFolderError,
    VizOptions,
    _text,
    render,
    repair_labels_at,
)
from samtrack.pipeline.runner import run
from samtrack.pipeline.viz import OVERLAY_ALPHA, id_color

SPEC = SceneSpec(num_animals=2, num_frames=20, width=320, height=180, body_length=40, seed=5,
                 exit_every=0, noise_sigma=0, shadow=0)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("viz")
    scene = Scene(SPEC).write(root / "scene")
    out = run(load_config(None, {"video.path": str(scene / "img1"), "source.name": "masks",
                                 "source.masks.path": str(scene / "gt" / "masks"),
                                 "output.dir": str(root / "run"), "quiet": True}))
    written = render(out.out_dir, VizOptions(gt=str(scene / "gt" / "masks"), binary=True))
    return root, scene, out, written


def _frames(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            return frames
        frames.append(f)


def test_trails_video_frame_count_and_size(rendered):
    _, _, _out, written = rendered
    frames = _frames(written["trails.mp4"])
    assert len(frames) == SPEC.num_frames
    assert frames[0].shape == (SPEC.height, SPEC.width, 3)
    assert len(_frames(written["binary.mp4"])) == SPEC.num_frames


def test_centroid_shows_the_ids_palette_colour_blended(rendered):
    _, scene, out, written = rendered
    frames = _frames(written["trails.mp4"])
    for t in (0, 10, 19):
        id_map = read_id_map(out.out_dir / "masks" / f"{t:06d}.png")
        image = cv2.imread(str(scene / "img1" / f"{t:06d}.jpg"))
        for tid in np.unique(id_map)[1:]:
            ys, xs = np.nonzero(id_map == tid)
            cx, cy = int(xs.mean()), int(ys.mean())
            expected = (1 - OVERLAY_ALPHA) * image[cy, cx] + OVERLAY_ALPHA * \
                np.array(id_color(int(tid)))
            # mp4v compression: allow a small tolerance
            assert np.abs(frames[t][cy, cx].astype(float) - expected).max() < 30


def test_repair_label_shown_from_its_frame():
    repairs = [{"frame": 7, "kind": "restored", "new_track": 3, "old_track": -1},
               {"frame": 9, "kind": "swap_fixed", "new_track": 5, "old_track": 2}]
    assert repair_labels_at(repairs, 6) == []
    assert repair_labels_at(repairs, 7) == [(3, "3 restored")]
    assert (5, "2<->5 swap fixed") in repair_labels_at(repairs, 12)


def test_label_is_drawn_in_the_right_frame(rendered, tmp_path):
    _root, _, out, _ = rendered
    copy = tmp_path / "run"
    shutil.copytree(out.out_dir, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["repairs"] = [{"frame": 5, "kind": "restored", "new_track": 1, "old_track": -1}]
    (copy / "summary.json").write_text(json.dumps(summary))
    plain = _frames(render(out.out_dir, VizOptions(out=tmp_path / "a"))["trails.mp4"])
    labelled = _frames(render(copy, VizOptions(out=tmp_path / "b"))["trails.mp4"])
    # pixels changed by more than H.264's noise: the label's white-on-black text
    changed = [int((np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 80).sum())
               for a, b in zip(plain, labelled, strict=True)]
    assert max(changed[:5]) == 0 and changed[5] > 20


def test_timeline_and_gallery_have_a_row_per_identity(rendered):
    _, _, out, written = rendered
    gallery = cv2.imread(str(written["gallery.png"]))
    assert gallery.shape[0] == 64 * len(out.track_ids)
    assert cv2.imread(str(written["timeline.png"])) is not None
    assert cv2.imread(str(written["trails.png"])) is not None


def test_bad_run_folders(rendered, tmp_path):
    _, _, out, _ = rendered
    with pytest.raises(RunFolderError, match=r"no such run folder"):
        render(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(out.out_dir, broken)
    shutil.rmtree(broken / "masks")
    with pytest.raises(RunFolderError, match=r"masks: missing"):
        render(broken)
    short = tmp_path / "short"
    shutil.copytree(out.out_dir, short)
    (short / "masks" / "000003.png").unlink()
    with pytest.raises(RunFolderError, match=r"19 ID maps but summary.json says 20 frames"):
        render(short)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_videos_are_h264_with_even_size(rendered):
    import av

    _, _, _out, written = rendered
    with av.open(str(written["trails.mp4"])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.pix_fmt == "yuv420p"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_trails_video_plays_to_its_end_in_a_browser(rendered):
    import functools
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    _, _, _out, written = rendered
    folder = written["trails.mp4"].parent
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            page.set_content(f'<video id="v" muted src="http://127.0.0.1:'
                             f'{server.server_address[1]}/trails.mp4"></video>')
            result = page.evaluate("""() => new Promise(done => {
                const v = document.getElementById('v');
                v.onerror = () => done({error: v.error ? v.error.code : -1});
                v.onended = () => done({ended: true, width: v.videoWidth, time: v.currentTime});
                v.play().catch(e => done({error: String(e)}));
                setTimeout(() => done({timeout: v.currentTime}), 10000);
            })""")
            browser.close()
    finally:
        server.shutdown()
    assert result.get("ended"), result
    assert result["width"] == SPEC.width
    assert result["time"] == pytest.approx(SPEC.num_frames / 25.0, abs=0.1)


def test_an_identity_seen_only_at_the_border_gets_a_gallery_row_with_a_note(tmp_path, caplog):
    from samtrack.pipeline.core.formats import write_id_map

    frames, maps = tmp_path / "img", tmp_path / "maps"
    frames.mkdir()
    maps.mkdir()
    for t in range(6):
        cv2.imwrite(str(frames / f"{t:06d}.jpg"), np.full((80, 120, 3), 90, np.uint8))
        id_map = np.zeros((80, 120), np.uint16)
        id_map[30:50, 50 + t:70 + t] = 1  # in the middle
        id_map[20:40, 0:8] = 2  # half out of the frame, at its left edge, all along
        write_id_map(maps / f"{t:06d}.png", id_map)
    out = run(load_config(None, {"video.path": str(frames), "source.name": "masks",
                                 "source.masks.path": str(maps), "source.masks.ids": "track",
                                 "output.dir": str(tmp_path / "run"), "quiet": True}))
    assert len(out.track_ids) == 2
    with caplog.at_level("INFO", logger="samtrack"):
        written = render(out.out_dir, VizOptions())
    gallery = cv2.imread(str(written["gallery.png"]))
    assert gallery.shape[0] == 64 * 2
    assert "seen only at the frame border" in caplog.text


def test_the_outline_of_a_label_ends_where_its_text_ends():
    """A long legend on grey: its dark outline reaches no further right than a pixel or two
    past the white text (a thicker copy beneath used to drift a dozen pixels past it)."""
    image = np.full((40, 400, 3), 128, np.uint8)
    _text(image, "paths: o entry, x exit at the border", (10, 25), 0.55)
    white = np.flatnonzero((image > 200).all(axis=2).any(axis=0))
    dark = np.flatnonzero((image < 40).all(axis=2).any(axis=0))
    assert white.size and dark.size
    assert dark.max() <= white.max() + 2 and dark.min() >= white.min() - 2
