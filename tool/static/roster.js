/* The instructor's roster page, enhanced: filters apply on change, and a running sync is
   followed in place (progress bar, counts, status), then the table part is reloaded, without
   reloading the page (focus and scroll stay where the person left them). Everything the script
   needs comes from data-* attributes: the Content-Security-Policy forbids inline scripts.
   Without JavaScript the page still works: Filter button, "Refresh the table" link. */
(function () {
  "use strict";

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  /* "Nov 30, 15:25" in UTC, like the server's utc_short filter. */
  function timeElement(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return document.createTextNode("");
    var text = MONTHS[d.getUTCMonth()] + " " + d.getUTCDate() +
      (d.getUTCFullYear() !== new Date().getUTCFullYear() ? " " + d.getUTCFullYear() : "") +
      ", " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
    var iso0 = d.toISOString().replace(/\.\d{3}Z$/, "Z");
    return el("time", {datetime: iso0, title: iso0}, text);
  }

  function applyFiltersOnChange() {
    var form = document.getElementById("roster-filters");
    if (!form) return;
    var fallback = form.querySelector("[data-fallback]");
    if (fallback) fallback.classList.add("hidden");
    form.addEventListener("change", function () { form.submit(); });
  }

  function showCounts(counts) {
    var box = document.getElementById("roster-counts");
    if (!box || !counts) return;
    box.textContent = "";
    box.appendChild(el("strong", {}, String(counts.active)));
    box.appendChild(document.createTextNode(" active"));
    Object.keys(counts.per_role || {}).sort(function (a, b) {
      return a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0;
    }).forEach(function (word) {
      box.appendChild(document.createTextNode(" · " + word + " " + counts.per_role[word]));
    });
    box.appendChild(document.createTextNode(" · "));
    box.appendChild(el("strong", {}, String(counts.inactive)));
    box.appendChild(document.createTextNode(" inactive"));
  }

  function showRunning(sync) {
    var bar = document.getElementById("sync-progress");
    if (bar && sync.expected_members > sync.members_seen) {
      bar.max = sync.expected_members; bar.value = sync.members_seen;
    } else if (bar) {
      bar.removeAttribute("value");  // past the last sync's count: the total is unknown
    }
    var detail = document.getElementById("sync-detail");
    if (detail) detail.textContent = sync.summary;
  }

  function showFinished(box, sync) {
    var label = document.getElementById("sync-label");
    if (label) {
      label.textContent = "Last sync ";
      label.className = "";
      label.appendChild(el("span", {"class": "pill " + sync.status}, sync.status));
    }
    var bar = document.getElementById("sync-progress");
    if (bar) bar.parentNode.removeChild(bar);
    var detail = document.getElementById("sync-detail");
    if (detail) {
      detail.textContent = sync.summary;
      if (sync.finished_at) {
        detail.appendChild(document.createTextNode(" Finished "));
        detail.appendChild(timeElement(sync.finished_at));
        detail.appendChild(document.createTextNode(" UTC."));
      }
    }
    var error = document.getElementById("sync-error");
    if (sync.error) {
      if (!error) {
        error = el("p", {id: "sync-error", "class": "sync-error"});
        box.insertBefore(error, document.getElementById("sync-notice"));
      }
      error.textContent = sync.error;
    } else if (error) {
      error.parentNode.removeChild(error);
    }
    var button = document.getElementById("sync-now");
    if (button) { button.disabled = false; button.removeAttribute("aria-describedby"); }
    box.dataset.running = "false";
  }

  /* The table part of this same page, fetched again and swapped in; the notice link otherwise. */
  function reloadTable() {
    var region = document.getElementById("roster-table-region");
    var notice = document.getElementById("sync-notice");
    function offerLink() { if (notice) notice.classList.remove("hidden"); }
    if (!region || !window.DOMParser) { offerLink(); return; }
    fetch(window.location.href, {headers: {"Accept": "text/html"}, credentials: "same-origin"})
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("roster-table-region");
        if (!fresh) throw new Error("no table");
        region.parentNode.replaceChild(document.importNode(fresh, true), region);
      })
      .catch(offerLink);
  }

  function followSync() {
    var box = document.getElementById("sync-status");
    if (!box || box.dataset.running !== "true" || !box.dataset.progressUrl) return;
    var url = box.dataset.progressUrl;
    function poll() {
      fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
        .then(function (r) {
          // A 4xx (the session ended) will not get better by asking again.
          if (r.status >= 400 && r.status < 500) return {sync: null};
          if (!r.ok) throw new Error(String(r.status));
          return r.json();
        })
        .then(function (data) {
          var sync = data.sync;
          if (!sync) return;
          if (sync.running) { showRunning(sync); setTimeout(poll, 1000); return; }
          showFinished(box, sync);
          showCounts(data.counts);
          reloadTable();
        })
        .catch(function () { setTimeout(poll, 3000); });
    }
    setTimeout(poll, 1000);
  }

  function start() { applyFiltersOnChange(); followSync(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
