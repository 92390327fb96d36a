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

// Paying with Stripe's Payment Element (outside development, with STRIPE_PUBLISHABLE_KEY): the
// key, the intent's client secret and where Stripe sends the buyer back come as data- attributes
// of #payment-form. confirmPayment either redirects (to the bank, then back here, where the page
// waits for the webhook) or answers an error to show; the order is paid only by the webhook.
(function () {
  "use strict";
  const form = document.getElementById("payment-form");
  if (!form) return;
  const message = document.getElementById("payment-message");
  const submit = document.getElementById("payment-submit");
  function say(text) {
    message.textContent = text;
    message.hidden = false;
  }
  if (typeof window.Stripe !== "function") {
    say("Payment is unavailable: Stripe's card form could not be loaded. Please try again later.");
    return;
  }
  const stripe = window.Stripe(form.dataset.stripeKey);
  const elements = stripe.elements({ clientSecret: form.dataset.clientSecret });
  const payment = elements.create("payment");
  payment.mount("#payment-element");
  payment.on("ready", function () { submit.disabled = false; });
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    submit.disabled = true;
    message.hidden = true;
    const result = await stripe.confirmPayment({
      elements: elements,
      confirmParams: { return_url: form.dataset.returnUrl },
    });
    // Only reached when there is no redirect: the card was refused or the form is incomplete.
    say(result.error && result.error.message ? result.error.message : "The payment did not go through.");
    submit.disabled = false;
  });
})();
