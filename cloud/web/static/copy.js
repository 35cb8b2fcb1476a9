// Copy buttons: <button data-copy="ID" data-copied="…" data-copy-failed="…" hidden> copies the
// text of element #ID. The buttons stay hidden without JavaScript (the text can be selected by
// hand); kept out of the page because the CSP allows no inline script.
(function () {
  "use strict";

  function say(text) {
    var status = document.querySelector("[data-copy-status]");
    if (status) { status.textContent = text; }
  }

  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }

  function copy(button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = source.textContent.replace(/\s+$/, "") + (source.tagName === "PRE" ? "\n" : "");
    var done = function () { say(button.getAttribute("data-copied")); };
    var failed = function () {
      if (fallback(text)) { done(); } else { say(button.getAttribute("data-copy-failed")); }
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, failed);
    } else {
      failed();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { copy(button); });
    });
  });
})();
