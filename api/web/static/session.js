// On /login?next=…: a page sent here because its 15-minute access token ran out tries the
// session's refresh token first (the `refresh-token` cookie only travels to /api/v1/auth) and,
// when the session is still alive, goes straight back without asking for the password.
(function () {
  "use strict";
  const params = new URLSearchParams(window.location.search);
  const next = params.get("next");
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (!next || !meta || !next.startsWith("/") || next.startsWith("//")) return;
  fetch("/api/v1/auth/refresh", { method: "POST", headers: { "X-CSRF-Token": meta.content } })
    .then(function (response) { if (response.ok) window.location.replace(next); })
    .catch(function () {});
})();
