"""The live server against other web pages and abusive clients (pipeline.live.guard)."""

from __future__ import annotations

import asyncio
import http.server
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from test_live import CHROMIUM, _session, _start_live, _wait

from samtrack.pipeline.live.guard import Guard
from samtrack.pipeline.live.server import create_app

STATIC = Path(__file__).resolve().parents[1] / "pipeline" / "live" / "static"


def _stop(proc: subprocess.Popen) -> None:
    """End a live server started by a test; never leave one behind."""
    proc.terminate()
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def _counting_app():
    app = FastAPI()
    calls = {"n": 0}

    @app.post("/act")
    def act(body: dict) -> dict:
        calls["n"] += 1
        return {"n": calls["n"]}

    @app.get("/look")
    def look() -> dict:
        return {"n": calls["n"]}

    @app.websocket("/ws")
    async def ws(socket: WebSocket):
        await socket.accept()
        await socket.send_json({"frame": 1})
        await socket.close()

    return app, calls


def _client(**guard) -> tuple[TestClient, dict]:
    app, calls = _counting_app()
    return TestClient(Guard(app, **guard), base_url="http://127.0.0.1:8000"), calls


def test_a_foreign_host_name_is_refused_loopback_names_are_served():
    client, _ = _client()
    assert client.get("/look", headers={"host": "attacker.example"}).status_code == 403
    assert client.get("/look", headers={"host": "attacker.example:8000"}).status_code == 403
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000"):
        assert client.get("/look", headers={"host": host}).status_code == 200, host


def test_a_foreign_origin_cannot_change_state_or_open_the_websocket():
    client, calls = _client()
    foreign = {"origin": "http://evil.example"}
    assert client.post("/act", json={}, headers=foreign).status_code == 403
    assert calls["n"] == 0
    assert client.post("/act", json={}, headers={"origin": "http://127.0.0.1:8000"}).json() == \
        {"n": 1}
    assert client.post("/act", json={}).json() == {"n": 2}  # a script: no Origin
    own_host = {"host": "127.0.0.1:8000"}  # the test client's WebSocket names no host itself
    with pytest.raises(WebSocketDisconnect), \
            client.websocket_connect("/ws", headers={**foreign, **own_host}) as ws:
        ws.receive_json()
    with client.websocket_connect("/ws", headers={"origin": "http://127.0.0.1:8000",
                                                  **own_host}) as ws:
        assert ws.receive_json() == {"frame": 1}
    # reading: no CORS header, so a foreign page's script cannot read the answer
    assert "access-control-allow-origin" not in client.get("/look", headers=foreign).headers


def test_beyond_loopback_every_request_needs_the_token():
    with pytest.raises(ValueError, match="needs a token"):
        Guard(FastAPI(), bound="0.0.0.0")
    client, _ = _client(bound="0.0.0.0", token="s3cret")
    client.headers["host"] = "192.0.2.7:8000"  # any name of the machine, but with the token
    assert client.get("/look").status_code == 401
    assert client.get("/look?token=wrong").status_code == 401
    assert client.get("/look?token=s3cret").status_code == 200
    assert client.get("/look", headers={"authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/look", headers={"cookie": "samtrack_token=s3cret"}).status_code == 200
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/ws") as ws:
        ws.receive_json()


def test_bodies_are_bounded_in_size_and_time():
    client, calls = _client(max_body=1000)
    assert client.post("/act", content=b"{" + b" " * 5000 + b"}",
                       headers={"content-type": "application/json"}).status_code == 413

    def chunks():  # no Content-Length: counted as it comes
        for _ in range(10):
            yield b" " * 500

    assert client.post("/act", content=chunks(),
                       headers={"content-type": "application/json"}).status_code == 413
    assert calls["n"] == 0

    app, calls = _counting_app()
    guard = Guard(app, body_timeout=0.2)
    sent = []

    async def never() -> dict:
        await asyncio.sleep(3600)
        return {}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/act", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1"), (b"content-length", b"10")]}
    start = time.monotonic()
    asyncio.run(guard(scope, never, send))
    assert time.monotonic() - start < 2
    assert sent[0]["status"] == 408 and calls["n"] == 0


def test_nan_coordinates_are_422_and_errors_do_not_echo_the_body(small_scene, tmp_path):
    session = _session(small_scene, tmp_path / "live")
    client = TestClient(create_app(session), base_url="http://127.0.0.1")
    answer = client.post("/prompt", content=b'{"frame": 0, "x": NaN, "y": 1, "name": "' +
                         b"z" * 30000 + b'"}', headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert len(answer.content) < 1000
    assert client.get("/api").status_code == 404  # no Swagger UI (its assets are on a CDN)


def test_the_page_never_puts_received_text_into_html():
    assert "innerHTML" not in (STATIC / "app.js").read_text()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_in_a_real_browser_a_foreign_page_can_neither_steer_nor_watch(small_scene, tmp_path):
    """A page on another origin (another port of this machine) tries what an attacker's page
    would: a no-cors POST that pauses the stream, a WebSocket for the frames. Then a name with
    markup is given through the API: the real page shows it as text."""
    from playwright.sync_api import sync_playwright

    proc, base = _start_live(["--video", str(small_scene / "img1"), "--masks",
                              str(small_scene / "gt" / "masks"), "--realtime", "--paused",
                              "--out", str(tmp_path / "live")])
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "index.html").write_text("<html><body>evil</body></html>")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(evil), **k)
    foreign = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=foreign.serve_forever, daemon=True).start()
    try:
        httpx.post(base + "/resume")
        _wait(lambda: httpx.get(base + "/tracks").json()["objects"])
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{foreign.server_address[1]}/")
            page.evaluate(f"fetch('{base}/pause', {{method: 'POST', mode: 'no-cors'}})"
                          ".catch(() => null)")
            got = page.evaluate(f"""() => new Promise(done => {{
                const ws = new WebSocket('{base.replace("http", "ws")}/ws');
                ws.onmessage = () => done('frames');
                ws.onerror = () => done('refused');
                ws.onclose = () => done('refused');
                setTimeout(() => done('timeout'), 5000);
            }})""")
            assert got == "refused"
            time.sleep(0.5)
            assert httpx.get(base + "/status").json()["paused"] is False
            target = httpx.get(base + "/tracks").json()["objects"][0]["id"]
            markup = "<img src=x onerror=\"document.title='owned'\">"
            assert httpx.post(base + "/name", json={"id": target, "name": markup}).status_code \
                == 200
            own = browser.new_page()
            own.goto(base + "/")
            own.wait_for_function(
                "[...document.querySelectorAll('#objects td')].some(td => "
                "td.textContent.includes('onerror'))", timeout=20000)
            assert own.title() != "owned"
            assert own.locator("#objects img").count() == 0
            browser.close()
    finally:
        foreign.shutdown()
        _stop(proc)


@pytest.mark.slow
@pytest.mark.parametrize("half", ["body", "headers"])
def test_a_slowloris_of_2000_half_sent_requests_leaves_tracking_running(tmp_path, half):
    """2,000 connections each send headers and a few bytes of a promised body (or half their
    headers), then nothing. The server keeps tracking, answers again, and gives their
    descriptors back."""
    import resource
    import socket

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    from samtrack.eval.bench.scenes import Scene, SceneSpec

    clip = Scene(SceneSpec(num_animals=3, num_frames=900, width=320, height=180,
                           seed=2)).write(tmp_path / "clip")  # 36 s of stream at 25 frames/s
    proc, base = _start_live(["--video", str(clip / "img1"), "--masks",
                              str(clip / "gt" / "masks"), "--realtime", "--out",
                              str(tmp_path / "live")])
    port = int(base.rsplit(":", 1)[1])
    held = []
    try:
        request = (b"POST /pause HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                   b"\r\nContent-Length: 1000\r\n\r\n{\"a\":")
        if half == "headers":
            request = b"POST /pause HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        frames = httpx.get(base + "/status", timeout=10).json()["frames"]
        for _ in range(2000):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(request)
            held.append(s)
        def open_fds() -> int:
            return len(list(Path(f"/proc/{proc.pid}/fd").iterdir()))

        if half == "body":
            # while they still hang: beyond the cap they were refused and closed, not held
            _wait(lambda: open_fds() < 200, timeout=5)  # well before the 10 s body timeout
        time.sleep(12)  # past the body timeout
        status = None
        deadline = time.time() + 30
        while status is None and time.time() < deadline:
            try:
                status = httpx.get(base + "/status", timeout=5).json()
            except (httpx.HTTPError, ValueError):
                time.sleep(0.5)
        assert status is not None, "the page never answered again"
        assert status["frames"] > frames and not status["paused"]
        assert open_fds() < 200
    finally:
        for s in held:
            s.close()
        _stop(proc)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.slow
def test_beyond_loopback_the_command_warns_and_prints_a_token_url(small_scene, tmp_path):
    import re
    import socket
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "samtrack", "live", "--video", str(small_scene / "img1"),
         "--masks", str(small_scene / "gt" / "masks"), "--host", "0.0.0.0", "--port",
         str(port), "--out", str(tmp_path / "live"), "--paused"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert "warning" in lines[0] and "beyond this machine" in lines[0]
        token = re.search(r"\?token=([\w-]+)", lines[1]).group(1)
        base = f"http://127.0.0.1:{port}"

        def served() -> bool:  # the URL is printed before the server is listening
            try:
                return httpx.get(f"{base}/status?token={token}", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        _wait(served)
        assert httpx.get(f"{base}/status").status_code == 401
    finally:
        _stop(proc)
