// Live figures on /organizer: every 30 s each show's sales (GET /api/v1/events/{id}/sales) and
// its chart image are fetched again.
(function () {
  "use strict";
  const cards = document.querySelectorAll("section[data-event]");
  async function refresh(card) {
    try {
      const response = await fetch("/api/v1/events/" + card.dataset.event + "/sales");
      if (!response.ok) return;
      const sales = await response.json();
      const held = sales.lines.reduce(function (n, line) { return n + line.held; }, 0);
      const set = function (selector, text) { const el = card.querySelector(selector); if (el) el.textContent = text; };
      set("dd.sold", String(sales.tickets_sold));
      set("dd.held", String(held));
      set("dd.checked-in", String(sales.tickets_checked_in));
      set("dd.revenue", sales.revenue + " " + (sales.currency || ""));
      const chart = card.querySelector("img.chart");
      if (chart) chart.src = chart.src.split("?")[0] + "?t=" + Date.now();
    } catch (e) {
      // offline for a moment
    }
  }
  if (cards.length) setInterval(function () { cards.forEach(refresh); }, 30000);
})();

// "Get paid": the button asks POST /api/v1/organizer/stripe/onboarding-link (which links a
// payout account first if there is none) and goes to Stripe's onboarding it answers.
(function () {
  "use strict";
  const button = document.getElementById("onboarding");
  const message = document.getElementById("onboarding-message");
  if (!button || !message) return;
  button.hidden = false;
  button.addEventListener("click", async function () {
    button.disabled = true;
    message.textContent = "";
    try {
      const response = await fetch("/api/v1/organizer/stripe/onboarding-link", {
        method: "POST",
        headers: { "X-CSRF-Token": button.dataset.csrf },
      });
      const body = await response.json();
      if (response.ok && body.url) {
        window.location.assign(body.url);
        return;
      }
      message.textContent = body.error || "Stripe could not be reached; please try again.";
    } catch (e) {
      message.textContent = "Stripe could not be reached; please try again.";
    }
    button.disabled = false;
  });
})();
