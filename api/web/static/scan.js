// The door scanner of /scan/{event_id}: posts each code to the check-in route with the session
// cookie and the CSRF header; a big green answer for a first scan, red for anything else.
(function () {
  "use strict";
  const form = document.getElementById("scan-form");
  const input = document.getElementById("qr-data");
  const answer = document.getElementById("answer");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  if (!form || !input || !answer) return;

  function show(ok, title, detail) {
    answer.hidden = false;
    answer.className = "answer " + (ok ? "answer-ok" : "answer-bad");
    answer.replaceChildren();
    const big = document.createElement("p");
    big.className = "answer-title";
    big.textContent = title;
    const small = document.createElement("p");
    small.textContent = detail;
    answer.append(big, small);
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const code = input.value.trim();
    if (!code) return;
    input.value = "";
    try {
      const response = await fetch("/api/v1/events/" + form.dataset.event + "/check-ins", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ qr_data: code }),
      });
      const body = await response.json().catch(function () { return {}; });
      if (response.status === 200) {
        const where = [body.tier_name, body.section, body.row && "row " + body.row, body.seat && "seat " + body.seat]
          .filter(Boolean).join(" · ");
        show(true, "Welcome in", body.code + (where ? " · " + where : "") + (body.attendee_name ? " · " + body.attendee_name : ""));
      } else if (body.code === "already_checked_in") {
        show(false, "Already checked in", "First scanned at " + (body.first_checked_in_at || "?"));
      } else {
        show(false, "Not valid", body.error || "HTTP " + response.status);
      }
    } catch (e) {
      show(false, "No connection", "The scan was not sent; try again.");
    }
    input.focus();
  });
})();
