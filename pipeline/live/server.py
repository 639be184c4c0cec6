"""The web page and HTTP/WebSocket API of ``samtrack live`` (FastAPI, served by uvicorn).

Everything the page needs ships in the package (``static/``): no CDN. The API is small and
usable from a script:

=========================  ============================================================
``GET /``                  the page
``GET /status``            frames/s, latency, dropped frames, stride k, paused, ended
``GET /tracks``            the latest frame's objects (id, name, box), names, corrections
``GET /tracks.txt``        every shown track so far, MOTChallenge text (download)
``GET /frame.jpg``         the latest annotated frame
``WS  /ws``                per processed frame a JSON message (frame, objects, stats, size)
                          followed by a binary one, its JPEG
``POST /prompt``           ``{frame, x, y, name?}``: add/select the object under the point
``POST /remove``           ``{frame, x, y}``: stop showing the object under the point
``POST /name``             ``{id, name}`` or ``{frame, x, y, name}``: name an identity
``POST /correct``          ``{frame, kind: "swap", points: [[x, y], [x, y]]}`` or
                           ``{frame, kind: "is", x, y, name}``
``POST /pause``, ``/resume``
=========================  ============================================================

A request the session cannot carry out is a 4xx with ``{"detail": message}``. What keeps the
page safe from other web pages (Host, Origin, the token beyond loopback, body limits) is
:mod:`pipeline.live.guard`, wrapped around the app by :func:`create_app`.
"""

from __future__ import annotations

import asyncio
import socket
import time
from importlib import resources
from typing import Literal

from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from samtrack.pipeline.core.errors import UserError
from samtrack.pipeline.live.guard import Guard, token_cookie_header
from samtrack.pipeline.live.session import LiveSession, RequestError

STATIC = resources.files("samtrack.pipeline.live") / "static"


class _Body(BaseModel):
    # NaN or infinite coordinates are no place on a frame: 422, not a traceback
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Point(_Body):
    frame: int = Field(ge=0)
    x: float
    y: float
    name: str | None = Field(default=None, min_length=1, max_length=64)


class Naming(_Body):
    """Name an identity by its id, or the object under a point of a frame (as clicked)."""

    name: str = Field(min_length=1, max_length=64)
    id: int | None = Field(default=None, ge=1)
    frame: int | None = Field(default=None, ge=0)
    x: float | None = None
    y: float | None = None


class Correction(_Body):
    frame: int = Field(ge=0)
    kind: Literal["swap", "is"]
    points: list[tuple[float, float]] | None = Field(default=None, min_length=2, max_length=2)
    x: float | None = None
    y: float | None = None
    name: str | None = Field(default=None, min_length=1, max_length=64)


def check_port(host: str, port: int) -> None:
    """Fail with one line before starting anything if the page cannot listen there."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"--host {host} --port {port}: cannot listen there "
                            f"({exc.strerror or exc})") from None


def create_app(session: LiveSession, *, bound: str = "127.0.0.1",
               token: str | None = None) -> Guard:
    """The page and API of ``session``, behind the guard (:mod:`pipeline.live.guard`):
    ``bound`` is the address the server listens on; beyond loopback ``token`` is required."""
    # no interactive docs: Swagger UI would load its assets from a CDN
    app = FastAPI(title="samtrack live", docs_url=None, redoc_url=None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # one line per problem, without echoing what was sent
        problems = ["/".join(str(p) for p in e.get("loc", ()) if p != "body") + ": " +
                    str(e.get("msg", "invalid")) for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(problems)}, status_code=422)

    def carry_out(call):
        try:
            return call()
        except RequestError as exc:
            raise HTTPException(exc.status, str(exc)) from None

    @app.get("/", response_class=HTMLResponse)
    def page() -> Response:
        response = HTMLResponse((STATIC / "index.html").read_text())
        if token is not None:  # the guard let it through: the URL carried the token
            key, value = token_cookie_header(token)
            response.headers.append(key, value)
        return response

    @app.get("/app.js")
    def script() -> Response:
        return Response((STATIC / "app.js").read_text(), media_type="text/javascript")

    @app.get("/status")
    def status() -> dict:
        return session.stats()

    @app.get("/tracks")
    def tracks() -> dict:
        return session.tracks()

    @app.get("/tracks.txt", response_class=PlainTextResponse)
    def tracks_txt() -> Response:
        return PlainTextResponse(session.mot_text(), headers={
            "Content-Disposition": 'attachment; filename="tracks.txt"'})

    @app.get("/frame.jpg")
    def frame() -> Response:
        latest = session.latest
        if latest is None:
            raise HTTPException(404, "no frame processed yet")
        return Response(latest.jpeg, media_type="image/jpeg")

    @app.post("/prompt")
    def prompt(body: Point) -> dict:
        return carry_out(lambda: session.prompt(body.frame, body.x, body.y, body.name))

    @app.post("/remove")
    def remove(body: Point) -> dict:
        return carry_out(lambda: session.remove(body.frame, body.x, body.y))

    @app.post("/name")
    def name(body: Naming) -> dict:
        if body.id is not None:
            ident = body.id
            return carry_out(lambda: session.name(ident, body.name))
        if body.frame is None or body.x is None or body.y is None:
            raise HTTPException(422, "give id, or frame, x and y of the object to name")
        frame, x, y = body.frame, body.x, body.y
        return carry_out(lambda: session.name_at(frame, x, y, body.name))

    @app.post("/correct")
    def correct(body: Correction) -> dict:
        if body.kind == "swap":
            if body.points is None:
                raise HTTPException(422, "swap needs points: [[x, y], [x, y]]")
            a, b = body.points
            return carry_out(lambda: session.swap(body.frame, a, b))
        if body.x is None or body.y is None or body.name is None:
            raise HTTPException(422, "'is' needs x, y and name")
        x, y, name = body.x, body.y, body.name
        return carry_out(lambda: session.assign(body.frame, x, y, name))

    @app.post("/pause")
    def pause() -> dict:
        session.pause()
        return session.stats()

    @app.post("/resume")
    def resume() -> dict:
        session.resume()
        return session.stats()

    @app.websocket("/ws")
    async def stream(socket: WebSocket) -> None:
        await socket.accept()
        seen, quiet_since = -1, time.monotonic()
        try:
            while True:
                if session.version != seen:
                    seen = session.version
                    message = session.frame_message()
                    if message is not None:
                        await socket.send_json(message[0])
                        await socket.send_bytes(message[1])
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > 0.5:
                    # paused or ended: stats twice a second, which also notices a page that
                    # went away (a socket nobody reads would keep the server from stopping)
                    await socket.send_json({"stats": session.stats()})
                    quiet_since = time.monotonic()
                await asyncio.sleep(0.01)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        except Exception as exc:  # the connection closed under us (websockets' own errors)
            if "close" not in type(exc).__name__.lower():
                raise

    return Guard(app, bound=bound, token=token)
