// Keeps the parts of a page marked data-live-url fresh until the server says
// they are settled (X-Live-Settled: true). Without JavaScript the page shows a
// Refresh link instead.
(function () {
  "use strict";
  function follow(box) {
    var delay = 700;
    var started = Date.now();
    var etag = null; // the server answers 304 while the part is unchanged
    function poll() {
      if (box.dataset.settled === "true" || Date.now() - started > 10 * 60 * 1000) return;
      var headers = etag ? { "If-None-Match": etag } : {};
      fetch(box.dataset.liveUrl, { credentials: "same-origin", cache: "no-store", headers: headers })
        .then(function (response) {
          if (response.status !== 304 && !response.ok) throw new Error("HTTP " + response.status);
          box.dataset.settled = response.headers.get("X-Live-Settled") || "false";
          if (response.status === 304) return null;
          etag = response.headers.get("ETag");
          return response.text();
        })
        .then(function (html) {
          if (html !== null) box.innerHTML = html;
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
