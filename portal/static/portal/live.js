// Keeps the parts of a page marked data-live-url fresh until the server says
// they are settled (X-Live-Settled: true). Without JavaScript the page shows a
// Refresh link instead.
(function () {
  "use strict";
  function follow(box) {
    var delay = 700;
    var started = Date.now();
    function poll() {
      if (box.dataset.settled === "true" || Date.now() - started > 10 * 60 * 1000) return;
      fetch(box.dataset.liveUrl, { credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          box.dataset.settled = response.headers.get("X-Live-Settled") || "false";
          return response.text();
        })
        .then(function (html) {
          box.innerHTML = html;
          delay = 700;
        })
        .catch(function () {
          delay = Math.min(delay * 2, 10000); // the server is busy or away: back off
        })
        .finally(function () {
          window.setTimeout(poll, delay);
        });
    }
    window.setTimeout(poll, delay);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-url]").forEach(follow);
  });
})();
