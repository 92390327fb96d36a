// The hold's countdown on /checkout/{order_id}.
(function () {
  "use strict";
  const deadline = document.getElementById("hold-deadline");
  const out = document.getElementById("countdown");
  if (!deadline || !out) return;
  const end = Date.parse(deadline.getAttribute("datetime"));
  function tick() {
    const left = Math.max(0, Math.round((end - Date.now()) / 1000));
    const minutes = Math.floor(left / 60), seconds = left % 60;
    out.textContent = left > 0 ? "(" + minutes + ":" + String(seconds).padStart(2, "0") + " left)" : "(the hold has run out)";
    if (left === 0) {
      clearInterval(timer);
      setTimeout(function () { window.location.reload(); }, 3000);
    }
  }
  const timer = setInterval(tick, 1000);
  tick();
})();
