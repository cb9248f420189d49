// Auto-refresh for pages that show work in progress (body data-refresh =
// seconds). It waits while someone types in a form, so a reason being
// written is never lost. Without JavaScript, a <noscript> meta refresh
// does the same (forms or not).
(function () {
  "use strict";
  var secs = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (!(secs > 0)) {
    return;
  }
  function busy() {
    var a = document.activeElement;
    if (a && /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(a.tagName) && a.type !== "hidden") {
      return true;
    }
    var fields = document.querySelectorAll("input[type=text], textarea");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value !== "" && fields[i].form && fields[i].form.method === "post") {
        return true;
      }
    }
    return false;
  }
  // The next load drops ?done= (what the last action did: said once).
  var params = new URLSearchParams(window.location.search);
  params.delete("done");
  var next = window.location.pathname + (params.toString() ? "?" + params.toString() : "");
  window.setInterval(function () {
    if (!busy()) {
      window.location.replace(next);
    }
  }, secs * 1000);
})();
