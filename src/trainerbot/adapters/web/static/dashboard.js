// trainerbot dashboard: the live loss curve of a job (Server-Sent Events) and the review
// queue's keys. Served as a file (the Content-Security-Policy allows no inline script);
// every page works without it.
"use strict";

const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

async function post(url, fields) {
  const body = new URLSearchParams(fields || {});
  const response = await fetch(url, {
    method: "POST", body, credentials: "same-origin",
    headers: { "X-CSRF-Token": csrf(), "Accept": "application/json" },
  });
  let data = {};
  try { data = await response.json(); } catch (e) { data = { error: "The server answered " + response.status + "." }; }
  return { ok: response.ok && data.ok, text: data.text || data.error || "", closed: data.closed || [] };
}

// ------------------------------------------------------------------ job page
function drawCurve(canvas, points) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 32;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#999"; ctx.strokeRect(pad, 8, w - pad - 8, h - pad - 8);
  if (points.length < 1) return;
  const xs = points.map(p => p[0]), ys = points.map(p => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y0 = Math.min(...ys), y1 = Math.max(...ys, y0 + 1e-6);
  const X = x => pad + (x - x0) / (x1 - x0) * (w - pad - 8), Y = y => h - pad - (y - y0) / (y1 - y0) * (h - pad - 16);
  ctx.strokeStyle = "#2a6ebb"; ctx.lineWidth = 2; ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(X(p[0]), Y(p[1])) : ctx.moveTo(X(p[0]), Y(p[1]))));
  ctx.stroke();
  ctx.fillStyle = "#333"; ctx.font = "11px sans-serif";
  ctx.fillText(y1.toFixed(3), 2, 16); ctx.fillText(y0.toFixed(3), 2, h - pad);
  ctx.fillText("step " + x1, w - 70, h - 8);
  canvas.dataset.points = String(points.length);
}

function followJob(live) {
  const canvas = document.getElementById("curve");
  const points = JSON.parse(live.dataset.losses || "[]");
  drawCurve(canvas, points);
  if (live.dataset.finished === "yes") return;
  const source = new EventSource(`/jobs/${live.dataset.job}/events?after=${live.dataset.after}`);
  source.addEventListener("progress", (event) => {
    const e = JSON.parse(event.data);
    if (e.kind === "progress" && e.step !== null) {
      document.getElementById("step").textContent = e.total ? `${e.step}/${e.total}` : String(e.step);
      if (e.loss !== null) {
        document.getElementById("loss").textContent = e.loss.toFixed(4);
        points.push([e.step, e.loss]);
        drawCurve(canvas, points);
      }
      if (e.eta !== null) document.getElementById("eta").textContent = `${Math.round(e.eta)} s`;
    } else if (e.message) {
      const li = document.createElement("li");
      li.textContent = e.message;  // text, never HTML
      document.getElementById("events").appendChild(li);
    }
  });
  source.addEventListener("status", (event) => {
    const s = JSON.parse(event.data);
    document.getElementById("status").textContent = s.status;
    document.getElementById("progress").value = s.progress;
    document.getElementById("percent").textContent = `${Math.round(s.progress * 100)} %`;
  });
  source.addEventListener("end", () => source.close());
}

// -------------------------------------------------------------- review queue
function reviewQueue(table) {
  const said = document.getElementById("said");
  let current = 0;
  const rows = () => Array.from(table.querySelectorAll("tbody tr[data-id]"));
  const show = () => {
    const all = rows();
    current = Math.max(0, Math.min(current, all.length - 1));
    all.forEach((row, i) => row.classList.toggle("current", i === current));
    if (all[current]) all[current].focus();
  };
  const decide = async (action, fields) => {
    const row = rows()[current];
    if (!row) return;
    const result = await post(`/review/${row.dataset.id}/${action}`, fields);
    said.textContent = result.text;
    if (result.ok) {  // the decided row, and the other answers to its question an approval closed
      row.remove();
      result.closed.forEach((id) => { const other = table.querySelector(`tbody tr[data-id="${id}"]`); if (other) other.remove(); });
      show();
    }
  };
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select") || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    if (key === "j") { current += 1; show(); }
    else if (key === "k") { current -= 1; show(); }
    else if (key === "a") decide("approve");
    else if (key === "r") decide("reject");
    else if (key === "x") { const box = rows()[current]?.querySelector("input[type=checkbox]"); if (box) box.checked = !box.checked; }
    else if (key === "e") {
      const row = rows()[current];
      if (!row) return;
      const better = window.prompt("The answer I should give:", row.querySelector(".corrected").textContent);
      if (better !== null && better.trim()) decide("approve", { corrected: better });
    } else return;
    event.preventDefault();
  });
  show();
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live) followJob(live);
  const queue = document.getElementById("queue");
  if (queue) reviewQueue(queue);
});
