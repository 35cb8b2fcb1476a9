// Live sections: every element with data-live="SECONDS" and an id is refreshed in place from a
// fresh copy of the same page every SECONDS seconds (it replaces <meta http-equiv="refresh">,
// which reloads the whole page and takes the keyboard focus and the scroll position with it).
//
// A refresh is skipped while the user is interacting: keyboard focus inside a live section or
// in a form field, a text selection, a key, pointer or wheel event in the last 3 seconds, or a
// hidden tab. Focus and scroll position are never moved. The note [data-live-status] says
// when the page was last updated or that updates are paused. Without JavaScript the pages
// show the same and have a plain "refresh" link; kept out of the page because the CSP allows
// no inline script.
(function () {
  "use strict";
  var QUIET_MS = 3000;
  var lastInput = 0;
  var timer = null;

  ["keydown", "pointerdown", "wheel", "touchstart"].forEach(function (name) {
    document.addEventListener(name, function () { lastInput = Date.now(); },
      { capture: true, passive: true });
  });

  function sections() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-live][id]"));
  }

  function status(key, extra) {
    var note = document.querySelector("[data-live-status]");
    if (note) { note.textContent = (note.getAttribute("data-text-" + key) || "") + (extra || ""); }
  }

  function interacting() {
    if (document.hidden || Date.now() - lastInput < QUIET_MS) { return true; }
    var active = document.activeElement;
    if (active && active !== document.body) {
      if (active.closest("[data-live]")) { return true; }
      if (/^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) { return true; }
    }
    var selection = window.getSelection ? window.getSelection() : null;
    return !!(selection && !selection.isCollapsed);
  }

  function clock() {
    var now = new Date();
    return " " + [now.getHours(), now.getMinutes(), now.getSeconds()]
      .map(function (n) { return (n < 10 ? "0" : "") + n; }).join(":");
  }

  function apply(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var x = window.scrollX, y = window.scrollY;
    sections().forEach(function (section) {
      var next = fresh.getElementById(section.id);
      if (next && next.innerHTML !== section.innerHTML) { section.innerHTML = next.innerHTML; }
    });
    if (window.scrollX !== x || window.scrollY !== y) { window.scrollTo(x, y); }
  }

  function tick() {
    if (interacting()) { status("paused"); return Promise.resolve(); }
    return fetch(window.location.href, {
      credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" }
    }).then(function (reply) {
      if (!reply.ok || reply.redirected) { throw new Error("HTTP " + reply.status); }
      return reply.text();
    }).then(function (html) {
      if (interacting()) { status("paused"); return; }  // the user began while it loaded
      apply(html);
      status("updated", clock());
    }).catch(function () { status("failed"); });
  }

  function every(seconds) {
    var wait = function () {
      timer = window.setTimeout(function () { tick().then(wait); }, seconds * 1000);
    };
    wait();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var found = sections();
    if (!found.length || timer !== null) { return; }
    var seconds = Math.max(1, parseFloat(found[0].getAttribute("data-live")) || 5);
    status("live");
    every(seconds);
  });
})();
