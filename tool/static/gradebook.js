// The gradebook follows scores on their way to Canvas and the read of what Canvas holds, and
// updates the cells in place (no reload: focus and scroll stay where the instructor left them).
// Without JavaScript the page is complete; reloading it shows the same.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var MAX_POLLS = 90; // three minutes, then the page stops asking

  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }

  function setCell(cell) {
    var row = document.getElementById("cell-" + cell.assessment_id + "-" + cell.user_id);
    if (!row) { return; }
    row.classList.toggle("mismatch", !!cell.mismatch);
    row.querySelectorAll("[data-field]").forEach(function (el) {
      var field = el.getAttribute("data-field");
      if (field === "mismatch") {
        el.classList.toggle("hidden", !cell.mismatch);
      } else if (field === "can_resend") {
        el.classList.toggle("hidden", !cell.can_resend);
      } else if (field === "canvas_age") {
        el.textContent = cell.canvas_age ? "read " + cell.canvas_age : "";
      } else if (field === "state_words") {
        el.textContent = cell.state_words;
        el.className = "pill state-" + cell.state;
      } else if (cell[field] !== undefined && cell[field] !== null) {
        el.textContent = cell[field];
      }
    });
  }

  ready(function () {
    var section = document.getElementById("gradebook");
    if (!section || !window.fetch) { return; }
    var live = document.getElementById("gradebook-live");
    var filter = document.getElementById("gradebook-filter");
    if (filter) {
      // Filters apply on change; the Show button stays for browsers without JavaScript.
      var select = filter.querySelector("select");
      var button = filter.querySelector("[data-fallback]");
      if (button) { button.classList.add("hidden"); }
      if (select) { select.addEventListener("change", function () { filter.submit(); }); }
    }
    var busy = section.getAttribute("data-busy") === "true";
    var refreshing = section.getAttribute("data-refreshing") === "true";
    if (!busy && !refreshing) { return; }
    var url = section.getAttribute("data-status-url");
    var since = section.getAttribute("data-since");
    url += (url.indexOf("?") < 0 ? "?" : "&") + "since=" + encodeURIComponent(since);
    var polls = 0;

    function poll() {
      polls += 1;
      fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(function (body) {
          body.cells.forEach(setCell);
          var more = (body.busy || body.refreshing) && polls < MAX_POLLS;
          if (live) {
            live.textContent = body.refreshing ? "Reading the scores Canvas holds…"
              : body.busy ? "Some scores are on their way to Canvas…" : "Up to date.";
          }
          if (more) { window.setTimeout(poll, POLL_MS); }
        })
        .catch(function () {
          if (live) { live.textContent = "Could not check for updates; reload the page to see the latest."; }
        });
    }
    window.setTimeout(poll, POLL_MS);
  });
})();
