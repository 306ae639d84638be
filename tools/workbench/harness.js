// Harness only: records CSP violations, errors, and when #slide-viewer gets data-ready.
(function () {
  window.cspViolations = [];
  window.jsErrors = [];
  document.addEventListener("securitypolicyviolation", function (e) {
    window.cspViolations.push(e.violatedDirective + " " + e.blockedURI + " " + e.sourceFile + ":" + e.lineNumber);
  });
  window.addEventListener("error", function (e) { window.jsErrors.push(String(e.message)); });
  window.addEventListener("unhandledrejection", function (e) { window.jsErrors.push("unhandled rejection: " + e.reason); });
  // Where presses on the OSD canvas really landed, in viewer-element coordinates, to compute
  // the expected image coordinates with OSD's own API.
  window.presses = [];
  window.addEventListener("pointerdown", function (e) {
    var c = document.querySelector(".openseadragon-canvas");
    if (!c || !c.contains(e.target)) return;
    var r = c.getBoundingClientRect();
    var p = window.evidentiaViewer.world.getItemAt(0).viewerElementToImageCoordinates(new OpenSeadragon.Point(e.clientX - r.left, e.clientY - r.top));
    window.presses.push({ x: e.clientX - r.left, y: e.clientY - r.top, ix: p.x, iy: p.y });
  }, true);
  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("slide-viewer");
    new MutationObserver(function () {
      if (el.getAttribute("data-ready") === "1" && !window.readyAt) window.readyAt = performance.now();
    }).observe(el, { attributes: true });
  });
})();
