// Evidentia front-end behaviour, loaded as a file (the CSP forbids inline script):
// confirmations before destructive actions, keyboard shortcuts, copy buttons, live branching
// logic and calculated fields on data-entry forms.
(function () {
  "use strict";

  // Content-Security-Policy violations on this page, kept for the browser tests.
  window.evidentiaCspViolations = [];
  document.addEventListener("securitypolicyviolation", function (ev) {
    window.evidentiaCspViolations.push(ev.violatedDirective + " " + (ev.blockedURI || "inline"));
  });

  // <form data-confirm="…">: ask before submitting.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var msg = form.getAttribute && form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { ev.preventDefault(); }
  }, true);

  // <button data-copy="#selector">: copy that element's text.
  document.addEventListener("click", function (ev) {
    var sel = ev.target.getAttribute && ev.target.getAttribute("data-copy");
    if (!sel) return;
    var el = document.querySelector(sel);
    if (el && navigator.clipboard) {
      navigator.clipboard.writeText(el.textContent.trim()).then(function () { ev.target.textContent = "Copied"; });
    }
  });

  // <form data-logic="URL">: as values are typed, ask the server which fields their branching
  // logic hides and what the calculated fields come to (REDCap's live form), and show it.
  document.querySelectorAll("form[data-logic]").forEach(function (form) {
    var timer = null;
    var seq = 0;
    function apply(result) {
      form.querySelectorAll("[data-field]").forEach(function (el) {
        el.hidden = result.hidden.indexOf(el.getAttribute("data-field")) >= 0;
      });
      Object.keys(result.calc).forEach(function (name) {
        var out = form.querySelector('output[data-calc="' + name + '"]');
        var v = result.calc[name];
        if (out) out.textContent = v === null ? "" : String(v);
      });
    }
    function update() {
      var mine = ++seq;
      var body = new URLSearchParams(new FormData(form));
      fetch(form.getAttribute("data-logic"), { method: "POST", body: body, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (result) { if (result && mine === seq) apply(result); })
        .catch(function () {});
    }
    form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(update, 200); });
    form.addEventListener("change", function () { clearTimeout(timer); update(); });
  });

  function typing(ev) {
    var t = ev.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }

  var help = null;
  function toggleHelp() {
    if (!help) {
      help = document.createElement("div");
      help.className = "shortcuts";
      help.innerHTML = "<strong>Keyboard shortcuts</strong><br><kbd>/</kbd> search · <kbd>c</kbd> create · <kbd>e</kbd> edit<br>" +
        "<kbd>n</kbd>/<kbd>p</kbd> next/previous page · <kbd>g</kbd> then <kbd>s</kbd> studies · <kbd>Ctrl</kbd>+<kbd>S</kbd> save · <kbd>?</kbd> this help";
      document.body.appendChild(help);
    } else {
      help.classList.toggle("hidden");
    }
  }

  function clickKey(key) {
    var el = document.querySelector('[data-key="' + key + '"]');
    if (el) { el.click(); return true; }
    return false;
  }

  var pendingG = false;
  document.addEventListener("keydown", function (ev) {
    if ((ev.ctrlKey || ev.metaKey) && ev.key === "s") {
      if (clickKey("s")) ev.preventDefault();
      return;
    }
    if (typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (pendingG) {
      pendingG = false;
      if (ev.key === "s") { window.location.href = "/studies"; }
      return;
    }
    switch (ev.key) {
      case "/": {
        var s = document.querySelector("[data-search]");
        if (s) { ev.preventDefault(); s.focus(); s.select(); }
        break;
      }
      case "?": toggleHelp(); break;
      case "g": pendingG = true; break;
      case "c": case "e": case "n": case "p": clickKey(ev.key); break;
    }
  });
})();
