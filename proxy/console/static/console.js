// Tollgate console: small enhancements on top of pages that work without JavaScript.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  // Live calls: re-fetch the rows fragment every few seconds.
  var live = document.getElementById("live-calls");
  if (live && live.dataset.refresh) {
    setInterval(function () {
      fetch(live.dataset.refresh, {credentials: "same-origin", headers: {"accept": "text/html"}})
        .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
        .then(function (html) { if (html !== null) live.innerHTML = html; })
        .catch(function () {});
    }, 2000);
  }

  // Copy buttons: data-copy names the input to copy.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.getElementById(button.dataset.copy);
      var status = document.querySelector("[data-copy-status]");
      input.select();
      var done = function () { if (status) status.textContent = "Copied."; };
      if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
      else { document.execCommand("copy"); done(); }
    });
  });

  // Approval expiry countdowns.
  var clocks = document.querySelectorAll("time[data-countdown]");
  function tick() {
    clocks.forEach(function (el) {
      var left = Math.round((Date.parse(el.getAttribute("datetime")) - Date.now()) / 1000);
      el.textContent = left <= 0 ? "expired" : "expires in " + Math.floor(left / 60) + " min " + String(left % 60).padStart(2, "0") + " s";
    });
  }
  if (clocks.length) { tick(); setInterval(tick, 1000); }

  // Policy editors: validate against the JSON Schema (through the admin API) as you type.
  document.querySelectorAll("textarea[data-validate]").forEach(function (area) {
    var out = document.getElementById(area.getAttribute("aria-describedby"));
    var timer = null;
    function show(result) {
      out.textContent = "";
      if (result.valid) {
        var ok = document.createElement("p"); ok.className = "valid"; ok.textContent = "Valid policy."; out.appendChild(ok);
        // Warnings do not refuse the policy, but they are what it lets through that its author may not mean.
        var warned = document.createElement("ul"); warned.className = "warnings";
        (result.warnings || []).forEach(function (w) { var li = document.createElement("li"); li.textContent = "Warning: " + w; warned.appendChild(li); });
        if (warned.childNodes.length) out.appendChild(warned);
        return;
      }
      var list = document.createElement("ul");
      result.errors.forEach(function (e) { var li = document.createElement("li"); li.textContent = (e.pointer || "/") + ": " + e.reason; list.appendChild(li); });
      out.appendChild(list);
    }
    function check() {
      if (!area.value.trim()) { out.textContent = ""; return; }
      fetch(area.dataset.validate, {
        method: "POST", credentials: "same-origin",
        headers: {"content-type": "application/x-www-form-urlencoded", "x-csrf-token": csrf},
        body: new URLSearchParams({document: area.value})
      }).then(function (r) { return r.ok ? r.json() : null; }).then(function (j) { if (j) show(j); }).catch(function () {});
    }
    area.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(check, 300); });
    check();
  });
})();
