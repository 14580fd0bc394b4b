// Howdah's one script: refresh the parts of an admin page marked data-refresh.
//
// Every few seconds, while the tab is visible, it fetches the page again and swaps in
// the fresh copy of each marked part (matched by id). A part that holds the focus or a
// ticked checkbox is left alone, so a selection or a half-filled form is never lost.
// Without JavaScript, the pages work as they are, and reloading them refreshes them.
(function () {
  "use strict";

  var INTERVAL_MS = 5000;
  var timer = null;

  function marked() {
    return document.querySelectorAll("[data-refresh][id]");
  }

  function busy(part) {
    return part.contains(document.activeElement) || part.querySelector("input:checked");
  }

  function refresh() {
    if (!marked().length) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) throw new Error("not refreshed");
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        marked().forEach(function (part) {
          var copy = fresh.getElementById(part.id);
          if (copy && !busy(part)) part.replaceWith(document.importNode(copy, true));
        });
      })
      .catch(function () {
        // The next tick tries again; the page as shown stays.
      });
  }

  function start() {
    if (timer === null) timer = window.setInterval(refresh, INTERVAL_MS);
  }

  function stop() {
    window.clearInterval(timer);
    timer = null;
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      stop();
    } else {
      refresh();
      start();
    }
  });
  if (!document.hidden) start();
})();
