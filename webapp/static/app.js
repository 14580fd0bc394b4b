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

// The SMS form's counter: characters and segments as carriers count them, the way
// tasks/sms_text.py counts them (the server renders the same text for the page as sent).
(function () {
  "use strict";

  var GSM_BASIC =
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var GSM_EXTENDED = "^{}\\[~]|€\f";

  function count(text) {
    var units = 0;
    var gsm = true;
    for (var ch of text) {
      if (GSM_EXTENDED.indexOf(ch) >= 0) {
        units += 2;
      } else if (GSM_BASIC.indexOf(ch) >= 0) {
        units += 1;
      } else {
        gsm = false;
        break;
      }
    }
    // UCS-2 counts UTF-16 code units, which is what a JavaScript string's length is.
    if (!gsm) units = text.length;
    var single = gsm ? 160 : 70;
    var part = gsm ? 153 : 67;
    return {
      encoding: gsm ? "GSM-7" : "UCS-2",
      units: units,
      segments: units <= single ? 1 : Math.ceil(units / part),
    };
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  document.querySelectorAll("[data-segments-for]").forEach(function (output) {
    var input = document.getElementById(output.getAttribute("data-segments-for"));
    if (!input) return;
    function show() {
      var c = count(input.value);
      output.textContent =
        plural(c.units, "character") + ", " + plural(c.segments, "segment") + " (" + c.encoding + ")";
    }
    input.addEventListener("input", show);
    show();
  });
})();
