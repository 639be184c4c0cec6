"""What the live page shows: a 1280x720 clip with precomputed masks streamed at its own rate
(25 frames/s) through ``samtrack live``, watched by headless Chromium on the same machine.

Prints the frames the session processed and dropped, and the distinct frames the page drew
and at what rate, counted in the page from its first drawn frame to the stream's end.

    python -m samtrack.eval.bench.live_page [--frames 200] [--animals 5]

Needs the dev extra (playwright) and a Chromium (Debian's ``chromium``).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from samtrack.eval.bench.scenes import Scene, SceneSpec

COUNT_DRAWN = """() => { window.drawn = []; const img = document.getElementById('frame');
    img.addEventListener('load', () => window.drawn.push([performance.now(), img.src])); }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(frames: int, animals: int, chromium: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        scene = Scene(SceneSpec(num_animals=animals, num_frames=frames, width=1280,
                                height=720, body_length=120, seed=2)).write(Path(tmp) / "clip")
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium,
                                        args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            proc = subprocess.Popen(
                [sys.executable, "-m", "samtrack", "live", "--video", str(scene / "img1"),
                 "--masks", str(scene / "gt" / "masks"), "--realtime", "--out",
                 str(Path(tmp) / "live"), "--port", str(port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                deadline = time.time() + 60
                while time.time() < deadline:
                    try:
                        if httpx.get(base + "/status", timeout=1).status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.2)
                page.goto(base + "/")
                page.evaluate(COUNT_DRAWN)
                page.wait_for_function("window.drawn.length > 0")
                start = httpx.get(base + "/status").json()  # from the page's first frame on
                while not httpx.get(base + "/status").json()["ended"]:
                    time.sleep(0.2)
                time.sleep(0.5)
                drawn = page.evaluate("window.drawn")
                status = httpx.get(base + "/status").json()
            finally:
                browser.close()
                proc.terminate()
                proc.wait(timeout=60)
    times = [t for t, _ in drawn]
    rate = (len(times) - 1) / ((times[-1] - times[0]) / 1000) if len(times) > 1 else 0.0
    return {"processed": status["frames"] - start["frames"],
            "dropped": status["dropped"] - start["dropped"],
            "session_fps": status["fps"] or 0.0, "drawn": len({src for _, src in drawn}),
            "page_fps": rate}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samtrack.eval.bench.live_page",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--animals", type=int, default=5)
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium found", file=sys.stderr)
        return 2
    m = measure(args.frames, args.animals, chromium)
    print(f"live page, 1280x720 precomputed masks, {args.animals} animals, stream 25 frames/s, "
          f"{args.frames} frames; from the page's first frame on: session processed "
          f"{m['processed']}, dropped {m['dropped']}, at {m['session_fps']:.1f} frames/s; "
          f"page drew {m['drawn']} distinct frames at {m['page_fps']:.1f} frames/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
