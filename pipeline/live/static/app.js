// samtrack live page: shows frames from /ws and turns clicks into API calls.
"use strict";
const img = document.getElementById("frame");
const stats = document.getElementById("stats");
const message = document.getElementById("message");
const nameInput = document.getElementById("name");
let mode = "select";
let current = null;      // the frame message on screen
let pending = null;      // the description whose JPEG comes in the next (binary) message
let drawing = false;     // a JPEG is being decoded: a newer one replaces, never queues
let queued = null;
let shownUrl = null;
let swapFirst = null;    // first click of a swap
let paused = false;

function say(text) { message.textContent = text; }

document.querySelectorAll("[data-mode]").forEach(button => {
  button.addEventListener("click", () => {
    mode = button.dataset.mode;
    swapFirst = null;
    document.querySelectorAll("[data-mode]").forEach(b => b.classList.toggle("on", b === button));
    say(mode === "swap" ? "click the two objects that are swapped" : "");
  });
});

document.getElementById("pause").addEventListener("click", async () => {
  const answer = await post(paused ? "/resume" : "/pause", {});
  if (answer) { paused = answer.paused; document.getElementById("pause").textContent = paused ? "resume" : "pause"; }
});

async function post(path, body) {
  const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify(body)});
  const data = await response.json().catch(() => ({}));
  if (!response.ok) { say(typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)); return null; }
  return data;
}

img.addEventListener("click", async event => {
  if (!current) return;
  // the picture is scaled to the window: map the click back to the frame's own pixels
  const rect = img.getBoundingClientRect();
  const [width, height] = current.size;
  const x = (event.clientX - rect.left) * width / rect.width;
  const y = (event.clientY - rect.top) * height / rect.height;
  const frame = current.frame;
  const name = nameInput.value.trim() || null;
  let answer = null;
  if (mode === "select") {
    answer = await post("/prompt", {frame, x, y, name});
  } else if (mode === "remove") {
    answer = await post("/remove", {frame, x, y});
  } else if (mode === "name") {
    if (!name) { say("type a name first"); return; }
    answer = await post("/name", {frame, x, y, name});
  } else if (mode === "is") {
    if (!name) { say("type the name of the identity this object is"); return; }
    answer = await post("/correct", {frame, kind: "is", x, y, name});
  } else if (mode === "swap") {
    if (!swapFirst) { swapFirst = [x, y, frame]; say("now the other one"); return; }
    answer = await post("/correct", {frame: swapFirst[2], kind: "swap", points: [[swapFirst[0], swapFirst[1]], [x, y]]});
    swapFirst = null;
  }
  if (answer) say(JSON.stringify(answer));
});

function show(msg) {
  if (msg.stats) {
    const s = msg.stats;
    stats.textContent = `frame ${s.frame ?? "-"}  ${s.fps ?? "-"} frames/s  latency ${s.latency_ms ?? "-"} ms` +
      `  segmenter every ${s.stride} frame(s)  dropped ${s.dropped}` + (s.paused ? "  PAUSED" : "") +
      (s.ended ? "  stream ended" : "") + (s.error ? `  error: ${s.error}` : "");
  }
}

function draw(msg, jpeg) {
  // decoding is the page's cost per frame: while one decodes, only the newest waits
  if (drawing) { queued = [msg, jpeg]; return; }
  drawing = true;
  const url = URL.createObjectURL(jpeg);
  const next = () => {
    drawing = false;
    if (queued) { const [m, j] = queued; queued = null; draw(m, j); }
  };
  img.onload = () => {
    if (shownUrl) URL.revokeObjectURL(shownUrl);
    shownUrl = url;
    current = msg;
    listObjects(msg);
    next();
  };
  img.onerror = () => { URL.revokeObjectURL(url); next(); };  // an empty or broken JPEG
  img.src = url;
}

function listObjects(msg) {
  // every value goes in as text, never as HTML: a name is whatever a client sent
  const body = document.querySelector("#objects tbody");
  body.replaceChildren(...msg.objects.map(o => {
    const row = document.createElement("tr");
    for (const value of [o.id, o.name ?? "", o.box.map(v => v.toFixed(0)).join(", ")]) {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      row.appendChild(cell);
    }
    return row;
  }));
}

function connect() {
  const socket = new WebSocket(`ws://${location.host}/ws`);
  socket.binaryType = "blob";
  socket.onmessage = event => {
    if (typeof event.data !== "string") {  // the JPEG of the description just received
      if (pending) draw(pending, event.data);
      pending = null;
      return;
    }
    const msg = JSON.parse(event.data);
    show(msg);
    if (msg.objects) pending = msg;
  };
  socket.onclose = () => { stats.textContent += "  (disconnected; retrying)"; setTimeout(connect, 1000); };
}
connect();
