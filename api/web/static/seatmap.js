// The seat picker of /e/{event_id}: the seat-map document (GET /api/v1/events/{id}/seat-map)
// drawn on a <canvas>, so a 20,000-seat house is one JSON fetch and one element, not one element
// per seat. Click a free seat to pick it, or focus the map and move with the arrow keys, Space or
// Enter picks (the focused seat is announced in an aria-live region); wheel, pinch or the +/-
// buttons zoom, dragging pans. A hidden `seat` field per picked seat goes with the hold form.
// Statuses stay current by polling the document with its ETag (a 304 while nothing changed).
(function () {
  "use strict";
  const canvas = document.getElementById("seatmap");
  const box = document.getElementById("seatmap-box");
  const picked = document.getElementById("picked");
  const summary = document.getElementById("picked-summary");
  const live = document.getElementById("seat-focus");
  const tip = document.getElementById("seat-tip");
  if (!canvas || !box || !picked || !canvas.getContext) return;
  const ctx = canvas.getContext("2d");
  const url = "/api/v1/events/" + canvas.dataset.event + "/seat-map";
  const COLOURS = { available: "#7fc99a", held: "#f2c14e", sold: "#9a9a9a", blocked: "#444444", none: "#d0d0d0" };
  const PICKED = "#0b57d0", FOCUS = "#f5b400";
  const started = performance.now();

  // The seats in flat arrays (index = position in the document): geometry, names, state.
  let n = 0, xs, ys, ids, values, names, prices, statuses, rowStart, rowEnd;
  let byId = new Map(), labels = [], currency = "", unit = 1, radius = 0.4;
  let bounds = [0, 0, 1, 1];
  const grid = new Map();
  const chosen = new Set();
  let focused = -1, hovered = -1, etag = null;

  function load(map) {
    const seats = [];
    currency = map.currency || "";
    labels = [];
    for (const section of map.sections) {
      let top = null;
      for (const row of section.rows) {
        const first = seats.length;
        for (const s of row.seats) {
          seats.push([s, section.name, row.label, first]);
          if (top === null || s.y < top[1]) top = [s.x, s.y];
        }
        for (let i = first; i < seats.length; i++) seats[i].push(seats.length - 1);
      }
      if (top) labels.push([section.name, top[0], top[1]]);
    }
    n = seats.length;
    xs = new Float64Array(n); ys = new Float64Array(n);
    rowStart = new Int32Array(n); rowEnd = new Int32Array(n);
    ids = new Array(n); values = new Array(n); names = new Array(n); prices = new Array(n); statuses = new Array(n);
    byId = new Map();
    const gaps = [];
    for (let i = 0; i < n; i++) {
      const [s, section, row, first, last] = seats[i];
      xs[i] = s.x; ys[i] = s.y; rowStart[i] = first; rowEnd[i] = last;
      ids[i] = s.id;
      values[i] = s.offer_id ? s.offer_id + ":" + s.id : null;
      names[i] = section + ", row " + row + ", seat " + s.label;
      prices[i] = s.price;
      statuses[i] = s.status;
      byId.set(s.id, i);
      if (i > first && s.x > xs[i - 1] && gaps.length < 5000) gaps.push(s.x - xs[i - 1]);
    }
    gaps.sort(function (a, b) { return a - b; });
    unit = gaps.length ? gaps[gaps.length >> 1] : 1;
    radius = unit * 0.4;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      x0 = Math.min(x0, xs[i]); x1 = Math.max(x1, xs[i]); y0 = Math.min(y0, ys[i]); y1 = Math.max(y1, ys[i]);
    }
    bounds = [x0 - unit, y0 - unit * 2, x1 + unit, y1 + unit];
    grid.clear();
    for (let i = 0; i < n; i++) {
      const key = cell(xs[i], ys[i]);
      const list = grid.get(key);
      if (list) list.push(i); else grid.set(key, [i]);
    }
  }
  function cell(x, y) { return Math.floor(x / unit) * 1048576 + Math.floor(y / unit); }
  function free(i) { return statuses[i] === "available" && values[i] !== null; }

  // The view: screen = world * scale + offset (CSS pixels).
  let scale = 1, ox = 0, oy = 0, fit = 1;
  function fitWhole() {
    const w = canvas.clientWidth, h = canvas.clientHeight;
    const bw = bounds[2] - bounds[0], bh = bounds[3] - bounds[1];
    fit = Math.min(w / bw, h / bh);
    scale = fit;
    ox = (w - bw * scale) / 2 - bounds[0] * scale;
    oy = (h - bh * scale) / 2 - bounds[1] * scale;
  }
  function zoomAt(factor, sx, sy) {
    const next = Math.max(fit * 0.8, Math.min(fit * 400, scale * factor, 80 / radius));
    ox = sx - (sx - ox) * (next / scale);
    oy = sy - (sy - oy) * (next / scale);
    scale = next;
    redraw();
  }
  function size() {
    const w = canvas.clientWidth;
    const aspect = (bounds[3] - bounds[1]) / (bounds[2] - bounds[0]);
    canvas.style.height = Math.round(Math.max(240, Math.min(window.innerHeight * 0.7, w * aspect))) + "px";
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(canvas.clientWidth * ratio);
    canvas.height = Math.round(canvas.clientHeight * ratio);
  }

  let pending = false;
  function redraw() {
    if (!pending) { pending = true; requestAnimationFrame(function () { pending = false; draw(); }); }
  }
  let slowest = 0;
  function draw() {
    const t0 = performance.now();
    paint();
    slowest = Math.max(slowest, performance.now() - t0);
    canvas.dataset.slowestDrawMs = slowest.toFixed(1);
  }
  function paint() {
    const ratio = canvas.width / Math.max(1, canvas.clientWidth);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(ratio * scale, 0, 0, ratio * scale, ratio * ox, ratio * oy);
    // The visible part of the world, and one path per colour.
    const vx0 = -ox / scale - unit, vy0 = -oy / scale - unit;
    const vx1 = (canvas.clientWidth - ox) / scale + unit, vy1 = (canvas.clientHeight - oy) / scale + unit;
    const dots = radius * scale * ratio < 2;
    const paths = {};
    for (const key in COLOURS) paths[key] = new Path2D();
    const mine = new Path2D();
    for (let i = 0; i < n; i++) {
      const x = xs[i], y = ys[i];
      if (x < vx0 || x > vx1 || y < vy0 || y > vy1) continue;
      const path = chosen.has(i) ? mine : paths[values[i] === null && statuses[i] === "available" ? "none" : statuses[i]] || paths.blocked;
      if (dots) path.rect(x - radius, y - radius, radius * 2, radius * 2);
      else { path.moveTo(x + radius, y); path.arc(x, y, radius, 0, Math.PI * 2); }
    }
    for (const key in COLOURS) { ctx.fillStyle = COLOURS[key]; ctx.fill(paths[key]); }
    ctx.fillStyle = PICKED; ctx.fill(mine);
    if (focused >= 0 && document.activeElement === canvas) {
      ctx.beginPath();
      ctx.arc(xs[focused], ys[focused], radius * 1.6, 0, Math.PI * 2);
      ctx.lineWidth = Math.max(radius * 0.35, 2 / scale);
      ctx.strokeStyle = FOCUS;
      ctx.stroke();
    }
    const px = 13 / scale;
    if (labels.length < 200 || unit * scale > 6) {
      ctx.fillStyle = "#141414";
      ctx.font = px + "px system-ui, sans-serif";
      for (const [name, x, y] of labels) ctx.fillText(name, x - radius, y - unit * 0.9);
    }
  }

  // Hit-testing: the seat nearest a screen point, within a little more than its radius.
  function seatAt(sx, sy) {
    const x = (sx - ox) / scale, y = (sy - oy) / scale;
    const gx = Math.floor(x / unit), gy = Math.floor(y / unit);
    let best = -1, bestD = (radius * 1.3) ** 2 + (3 / scale) ** 2;
    for (let dx = -1; dx <= 1; dx++) {
      for (let dy = -1; dy <= 1; dy++) {
        for (const i of grid.get((gx + dx) * 1048576 + gy + dy) || []) {
          const d = (xs[i] - x) ** 2 + (ys[i] - y) ** 2;
          if (d < bestD) { best = i; bestD = d; }
        }
      }
    }
    return best;
  }
  function describe(i) {
    const state = chosen.has(i) ? "picked" : free(i) ? "free" : statuses[i] === "available" ? "not on sale" : statuses[i];
    return names[i] + (prices[i] ? ", " + prices[i] + " " + currency : "") + ", " + state;
  }
  function showTip(i) {
    if (i < 0) { tip.hidden = true; return; }
    tip.textContent = describe(i);
    tip.hidden = false;
    tip.style.left = Math.round(canvas.offsetLeft + xs[i] * scale + ox + 12) + "px";
    tip.style.top = Math.round(canvas.offsetTop + ys[i] * scale + oy - 36) + "px";
  }

  function renderPicked() {
    picked.replaceChildren();
    const list = [];
    for (const i of chosen) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = "seat";
      input.value = values[i];
      picked.appendChild(input);
      list.push(names[i]);
    }
    summary.textContent = list.length ? "Picked: " + list.join("; ") : "No seats picked.";
  }
  function toggle(i) {
    if (chosen.has(i)) chosen.delete(i);
    else if (free(i)) chosen.add(i);
    else { live.textContent = describe(i) + ": cannot be picked"; return; }
    renderPicked();
    live.textContent = describe(i);
    if (hovered === i || focused === i) showTip(i);
    redraw();
  }

  // Mouse, touch and pen: drag pans, two fingers pinch, a tap or click picks.
  const pointers = new Map();
  let dragged = false, pinch = 0, down = null;
  function local(event) {
    const r = canvas.getBoundingClientRect();
    return [event.clientX - r.left, event.clientY - r.top];
  }
  canvas.addEventListener("pointerdown", function (event) {
    const at = local(event);
    pointers.set(event.pointerId, at);
    if (pointers.size === 1) { dragged = false; down = at; }
    if (pointers.size === 2) {
      const [a, b] = Array.from(pointers.values());
      pinch = Math.hypot(a[0] - b[0], a[1] - b[1]);
      dragged = true;
    }
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", function (event) {
    const now = local(event);
    const before = pointers.get(event.pointerId);
    if (!before) {
      const i = seatAt(now[0], now[1]);
      if (i !== hovered) { hovered = i; showTip(i); canvas.classList.toggle("over-seat", i >= 0 && free(i)); }
      return;
    }
    pointers.set(event.pointerId, now);
    if (pointers.size === 2) {
      const [a, b] = Array.from(pointers.values());
      const distance = Math.hypot(a[0] - b[0], a[1] - b[1]);
      if (pinch > 0) zoomAt(distance / pinch, (a[0] + b[0]) / 2, (a[1] + b[1]) / 2);
      pinch = distance;
      return;
    }
    if (!dragged && Math.hypot(now[0] - down[0], now[1] - down[1]) < 5) return;
    dragged = true;
    ox += now[0] - before[0];
    oy += now[1] - before[1];
    tip.hidden = true;
    redraw();
  });
  function release(event) {
    const at = pointers.get(event.pointerId);
    pointers.delete(event.pointerId);
    if (pointers.size < 2) pinch = 0;
    if (event.type === "pointerup" && at && !dragged && pointers.size === 0) {
      const i = seatAt(at[0], at[1]);
      if (i >= 0) { focused = i; toggle(i); }
    }
  }
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);
  canvas.addEventListener("pointerleave", function () { if (!pointers.size) { hovered = -1; tip.hidden = true; } });
  canvas.addEventListener("wheel", function (event) {
    event.preventDefault();
    const [sx, sy] = local(event);
    zoomAt(Math.exp(-event.deltaY * 0.002), sx, sy);
  }, { passive: false });
  box.querySelector(".zoom").addEventListener("click", function (event) {
    const button = event.target.closest("button");
    if (!button) return;
    const w = canvas.clientWidth / 2, h = canvas.clientHeight / 2;
    if (button.dataset.zoom === "in") zoomAt(1.5, w, h);
    else if (button.dataset.zoom === "out") zoomAt(1 / 1.5, w, h);
    else { fitWhole(); redraw(); }
  });

  // The keyboard: arrows move to the nearest seat that way (along the row first), Space or
  // Enter picks or drops it, + and - zoom.
  function neighbour(i, dx, dy) {
    if (dy === 0) {
      // Along the row: the neighbour in the document that lies that way (rows may run either way).
      for (const j of [i - 1, i + 1]) {
        if (j >= rowStart[i] && j <= rowEnd[i] && (xs[j] - xs[i]) * dx > 0) return j;
      }
    }
    let best = -1, bestScore = Infinity;
    for (let j = 0; j < n; j++) {
      const ax = (xs[j] - xs[i]) * dx + (ys[j] - ys[i]) * dy; // along the direction
      if (ax <= unit * 0.1) continue;
      const across = Math.abs((xs[j] - xs[i]) * dy + (ys[j] - ys[i]) * dx);
      const score = ax + across * 3;
      if (score < bestScore) { best = j; bestScore = score; }
    }
    return best;
  }
  function focusSeat(i) {
    focused = i;
    const sx = xs[i] * scale + ox, sy = ys[i] * scale + oy, m = 30;
    if (sx < m || sy < m || sx > canvas.clientWidth - m || sy > canvas.clientHeight - m) {
      ox += canvas.clientWidth / 2 - sx;
      oy += canvas.clientHeight / 2 - sy;
    }
    live.textContent = describe(i);
    showTip(i);
    redraw();
  }
  const MOVES = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  canvas.addEventListener("keydown", function (event) {
    if (!n) return;
    const move = MOVES[event.key];
    if (move) {
      event.preventDefault();
      const j = focused < 0 ? 0 : neighbour(focused, move[0], move[1]);
      if (j >= 0) focusSeat(j);
    } else if ((event.key === " " || event.key === "Enter") && focused >= 0) {
      event.preventDefault();
      toggle(focused);
    } else if (event.key === "+" || event.key === "=") {
      zoomAt(1.5, canvas.clientWidth / 2, canvas.clientHeight / 2);
    } else if (event.key === "-") {
      zoomAt(1 / 1.5, canvas.clientWidth / 2, canvas.clientHeight / 2);
    }
  });
  canvas.addEventListener("focus", function () {
    if (!n || pointers.size) return; // focused by a click: that click says which seat
    if (focused < 0) {
      focused = 0;
      for (let i = 0; i < n; i++) if (free(i)) { focused = i; break; }
    }
    focusSeat(focused);
  });
  canvas.addEventListener("blur", function () { tip.hidden = true; redraw(); });

  // Live availability: the document again with If-None-Match, every 5 s.
  function apply(map) {
    for (const section of map.sections) {
      for (const row of section.rows) {
        for (const s of row.seats) {
          const i = byId.get(s.id);
          if (i === undefined) continue;
          statuses[i] = s.status;
          if (chosen.has(i) && !free(i)) { chosen.delete(i); live.textContent = names[i] + " was just taken"; }
        }
      }
    }
    renderPicked();
    redraw();
  }
  async function fetchMap() {
    const response = await fetch(url, { headers: etag ? { "If-None-Match": etag } : {} });
    if (response.status !== 200) return null;
    etag = response.headers.get("ETag");
    return response.json();
  }
  async function poll() {
    try {
      const map = await fetchMap();
      if (map) apply(map);
    } catch (e) {
      // offline for a moment: try again at the next tick
    }
  }

  async function start() {
    const map = await fetchMap();
    if (!map) return;
    const fetched = performance.now();
    load(map);
    box.hidden = false;
    size();
    fitWhole();
    const before = performance.now();
    draw();
    const after = performance.now();
    canvas.dataset.firstDrawMs = (after - before).toFixed(1);
    canvas.dataset.readyMs = (after - started).toFixed(1);
    canvas.dataset.fetchMs = (fetched - started).toFixed(1);
    canvas.dataset.seats = String(n);
    canvas.dataset.ready = "true";
    window.addEventListener("resize", function () { size(); fitWhole(); redraw(); });
    setInterval(poll, 5000);
  }
  // For tests and tools: where a seat is on the screen (client coordinates).
  canvas.seatPoint = function (id) {
    const i = byId.get(id);
    if (i === undefined) return null;
    const r = canvas.getBoundingClientRect();
    return { x: r.left + xs[i] * scale + ox, y: r.top + ys[i] * scale + oy };
  };
  start().then(function () {}, function () {}).finally(function () {
    if (canvas.dataset.ready) return;
    const note = document.getElementById("seatmap-summary");
    if (note) note.textContent += " The seat map could not be loaded: reload the page to try again.";
  });
})();
