// The door scanner of /scan/{event_id}.
//
// Online, each code goes to POST /api/v1/events/{id}/check-ins (session cookie + CSRF header):
// big green for a first check-in, red for anything else. The scanner kit (GET …/scanner-kit:
// the public key and the event's tickets) is kept in this browser, so when the network is gone
// a code's Ed25519 signature is verified here with WebCrypto, checked against the kit and the
// scans made so far, and queued; the queue goes to POST …/check-ins/batch once back online
// (the server's first-scan-wins rule decides). A camera is used where the browser can read QR
// codes itself (BarcodeDetector); otherwise a handheld scanner or the keyboard types the code.
(function () {
  "use strict";
  const form = document.getElementById("scan-form");
  const input = document.getElementById("qr-data");
  const answer = document.getElementById("answer");
  const status = document.getElementById("kit-status");
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (!form || !input || !answer || !meta) return;
  const csrf = meta.content;
  const eventId = form.dataset.event;
  const api = "/api/v1/events/" + eventId;
  const queueKey = "scan-queue:" + eventId;
  const kitKey = "scan-kit:" + eventId;
  let key = null;
  let tickets = new Map();
  let queue = JSON.parse(localStorage.getItem(queueKey) || "[]");

  function show(ok, title, detail) {
    answer.hidden = false;
    answer.className = "answer " + (ok ? "answer-ok" : "answer-bad");
    const big = document.createElement("p");
    big.className = "answer-title";
    big.textContent = title;
    const small = document.createElement("p");
    small.textContent = detail;
    answer.replaceChildren(big, small);
  }

  function report() {
    if (!status) return;
    const kit = key ? tickets.size + " tickets, key loaded" : "no offline kit yet";
    status.textContent = "Offline kit: " + kit + ". Waiting to sync: " + queue.length + ".";
  }

  function bytes(text) {
    let s = text.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    return Uint8Array.from(atob(s), function (c) { return c.charCodeAt(0); });
  }

  function uuid(b) {
    const hex = Array.from(b, function (x) { return x.toString(16).padStart(2, "0"); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  async function useKit(kit) {
    // Every key a valid code may be signed with (the current one first; older kits list only it).
    const published = kit.public_keys && kit.public_keys.length ? kit.public_keys.map(function (k) { return k.public_key; }) : [kit.public_key];
    key = await Promise.all(published.map(function (k) {
      return crypto.subtle.importKey("raw", bytes(k), { name: "Ed25519" }, false, ["verify"]);
    }));
    tickets = new Map(kit.tickets.map(function (t) { return [t.ticket_id, t]; }));
    report();
  }

  async function loadKit() {
    try {
      let after = null, kit = null;
      do {
        const response = await fetch(api + "/scanner-kit" + (after ? "?after=" + after : ""));
        if (!response.ok) return;
        const page = await response.json();
        if (kit) kit.tickets = kit.tickets.concat(page.tickets); else kit = page;
        after = page.next_after;
      } while (after);
      localStorage.setItem(kitKey, JSON.stringify(kit));
      await useKit(kit);
    } catch (e) {
      const saved = localStorage.getItem(kitKey);
      if (saved) await useKit(JSON.parse(saved)).catch(function () {});
    }
  }

  // What the code says, if its signature is genuine: {ticket, event, generation}; else null.
  async function verify(code) {
    const m = /^TK1\.([A-Za-z0-9_-]{46})\.([A-Za-z0-9_-]{86})$/.exec(code);
    if (!m || !key) return null;
    const signed = new TextEncoder().encode("TK1." + m[1]);
    let genuine = false;
    for (const k of key) {
      genuine = await crypto.subtle.verify({ name: "Ed25519" }, k, bytes(m[2]), signed).catch(function () { return false; });
      if (genuine) break;
    }
    if (!genuine) return null;
    const p = bytes(m[1]);
    return { ticket: uuid(p.slice(0, 16)), event: uuid(p.slice(16, 32)), generation: (p[32] << 8) | p[33] };
  }

  async function offline(code) {
    if (!key) return show(false, "No connection", "No offline kit in this browser yet; try again.");
    const v = await verify(code);
    if (!v || v.event !== eventId) return show(false, "Not valid", "Not a genuine ticket of this event (checked offline).");
    const t = tickets.get(v.ticket);
    if (!t) return show(false, "Unknown ticket", "Not in the offline kit; check it when back online.");
    if (t.status === "voided" || v.generation < t.generation) return show(false, "Not valid", "This ticket was voided or replaced.");
    if (t.status === "checked_in") return show(false, "Already checked in", "First scanned at " + (t.checked_in_at || "?"));
    t.status = "checked_in";
    t.checked_in_at = new Date().toISOString();
    queue.push({ qr_data: code, scanned_at: t.checked_in_at });
    localStorage.setItem(queueKey, JSON.stringify(queue));
    report();
    show(true, "Welcome in", t.code + " · offline, will sync");
  }

  async function sync() {
    if (!queue.length || !navigator.onLine) return;
    const sending = queue.slice(0, 500);
    try {
      const response = await fetch(api + "/check-ins/batch", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ scans: sending }),
      });
      if (!response.ok) return;
      queue = queue.slice(sending.length);
      localStorage.setItem(queueKey, JSON.stringify(queue));
      report();
    } catch (e) {
      // still offline
    }
  }

  async function check(code) {
    let response;
    try {
      response = await fetch(api + "/check-ins", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ qr_data: code }),
      });
    } catch (e) {
      return offline(code);
    }
    if (response.status >= 500) return offline(code);
    const body = await response.json().catch(function () { return {}; });
    if (response.status === 200) {
      const t = tickets.get(body.ticket_id);
      if (t) { t.status = "checked_in"; t.checked_in_at = body.checked_in_at; }
      const where = [body.tier_name, body.section, body.row && "row " + body.row, body.seat && "seat " + body.seat];
      show(true, "Welcome in", [body.code].concat(where, [body.attendee_name]).filter(Boolean).join(" · "));
    } else if (body.code === "already_checked_in") {
      show(false, "Already checked in", "First scanned at " + (body.first_checked_in_at || "?"));
    } else {
      show(false, "Not valid", body.error || "HTTP " + response.status);
    }
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const code = input.value.trim();
    input.value = "";
    if (code) await check(code);
    input.focus();
  });

  // The camera, where the browser reads QR codes itself.
  const camera = document.getElementById("camera");
  const video = document.getElementById("camera-view");
  if (camera && video && "BarcodeDetector" in window && navigator.mediaDevices) {
    camera.hidden = false;
    camera.addEventListener("click", async function () {
      const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
      video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
      video.hidden = false;
      await video.play();
      let last = "", busy = false;
      setInterval(async function () {
        if (busy) return;
        busy = true;
        try {
          const found = await detector.detect(video);
          const code = found.length ? found[0].rawValue : "";
          if (code && code !== last) { last = code; await check(code); }
        } finally { busy = false; }
      }, 300);
    });
  }

  window.addEventListener("online", sync);
  setInterval(sync, 10000);
  report();
  loadKit().then(sync);
})();
