// The seat picker of /e/{event_id}: click or press Space/Enter on a free seat to pick it (a
// hidden `seat` field per picked seat goes with the hold form); the map's statuses are kept
// current by polling the seat-map route with its ETag; +/- zoom and drag to pan.
(function () {
  "use strict";
  const svg = document.getElementById("seatmap");
  const form = document.getElementById("hold-form");
  const picked = document.getElementById("picked");
  const summary = document.getElementById("picked-summary");
  if (!svg || !form || !picked) return;
  const chosen = new Map();

  function render() {
    picked.replaceChildren();
    const names = [];
    for (const [value, seat] of chosen) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = "seat";
      input.value = value;
      picked.appendChild(input);
      names.push(seat.dataset.name);
    }
    summary.textContent = names.length ? "Picked: " + names.join("; ") : "No seats picked.";
  }

  function toggle(seat) {
    if (!seat.classList.contains("s-available") && !chosen.has(seat.dataset.seat)) return;
    const value = seat.dataset.seat;
    if (chosen.has(value)) {
      chosen.delete(value);
      seat.classList.remove("s-picked");
      seat.setAttribute("aria-checked", "false");
    } else {
      chosen.set(value, seat);
      seat.classList.add("s-picked");
      seat.setAttribute("aria-checked", "true");
    }
    render();
  }

  svg.addEventListener("click", function (event) {
    const seat = event.target.closest("circle.seat");
    if (seat && !dragged) toggle(seat);
  });
  svg.addEventListener("keydown", function (event) {
    const seat = event.target.closest("circle.seat");
    if (seat && (event.key === " " || event.key === "Enter")) {
      event.preventDefault();
      toggle(seat);
    }
  });

  // Live availability: ETag polling of GET /api/v1/events/{id}/seat-map.
  let etag = null;
  async function poll() {
    try {
      const headers = etag ? { "If-None-Match": etag } : {};
      const response = await fetch("/api/v1/events/" + svg.dataset.event + "/seat-map", { headers: headers });
      if (response.status === 200) {
        etag = response.headers.get("ETag");
        const map = await response.json();
        for (const section of map.sections) {
          for (const row of section.rows) {
            for (const s of row.seats) update(s);
          }
        }
      }
    } catch (e) {
      // offline for a moment: try again at the next tick
    }
  }
  function update(s) {
    const seat = document.getElementById("seat-" + s.id);
    if (!seat) return;
    const mine = chosen.has(seat.dataset.seat);
    for (const c of Array.from(seat.classList)) {
      if (c.startsWith("s-") && c !== "s-picked") seat.classList.remove(c);
    }
    seat.classList.add("s-" + s.status);
    const free = s.status === "available" && s.offer_id;
    if (!free && mine) toggle(seat);
    if (free) {
      seat.setAttribute("tabindex", "0");
      seat.setAttribute("role", "checkbox");
      seat.removeAttribute("aria-disabled");
    } else {
      seat.removeAttribute("tabindex");
      seat.setAttribute("aria-disabled", "true");
    }
  }
  setInterval(poll, 5000);
  poll();

  // Zoom and pan by changing the viewBox.
  const whole = svg.getAttribute("viewBox").split(" ").map(Number);
  let box = whole.slice();
  let dragged = false;
  function show() { svg.setAttribute("viewBox", box.map(function (v) { return v.toFixed(2); }).join(" ")); }
  function zoom(factor) {
    const cx = box[0] + box[2] / 2, cy = box[1] + box[3] / 2;
    box[2] = Math.min(whole[2], box[2] * factor);
    box[3] = Math.min(whole[3], box[3] * factor);
    box[0] = cx - box[2] / 2;
    box[1] = cy - box[3] / 2;
    show();
  }
  const controls = document.querySelector(".zoom");
  if (controls) {
    controls.hidden = false;
    controls.addEventListener("click", function (event) {
      const button = event.target.closest("button");
      if (!button) return;
      if (button.dataset.zoom === "in") zoom(0.7);
      else if (button.dataset.zoom === "out") zoom(1 / 0.7);
      else { box = whole.slice(); show(); }
    });
  }
  let start = null;
  svg.addEventListener("pointerdown", function (event) { start = [event.clientX, event.clientY, box[0], box[1]]; dragged = false; });
  svg.addEventListener("pointermove", function (event) {
    if (!start || box[2] >= whole[2]) return;
    const scale = box[2] / svg.clientWidth;
    const dx = event.clientX - start[0], dy = event.clientY - start[1];
    if (Math.abs(dx) + Math.abs(dy) > 4) dragged = true;
    box[0] = start[2] - dx * scale;
    box[1] = start[3] - dy * scale;
    show();
  });
  window.addEventListener("pointerup", function () { start = null; setTimeout(function () { dragged = false; }, 0); });
})();
