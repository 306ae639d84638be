// The AI heatmap overlay: the phenotype of each 1 mm² grid cell of a biomarker run as
// translucent OpenSeadragon overlays, shown with the #heatmap-toggle checkbox. Used by the slide
// viewer (reviewing roles) and the reading workbench (AI-assisted campaigns only); the server
// answers 404 to anyone blinded to the AI, and then the toggle stays hidden.
(function () {
  "use strict";
  window.evidentiaHeatmap = function (viewer, url, host) {
    var toggle = document.getElementById("heatmap-toggle");
    if (!url || !toggle) return;
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; }).then(function (map) {
      if (!map || !map.cells || !map.cells.length) return;
      toggle.hidden = false;
      toggle.querySelector(".run").textContent = "(run " + map.run + ")";
      var shown = [];
      // Opacity through a CSS variable on the viewer's host (the CSP allows the CSSOM).
      var opacity = toggle.querySelector(".heatmap-opacity");
      if (opacity) {
        var apply = function () { viewer.element.style.setProperty("--heat-opacity", String(opacity.value / 100)); };
        opacity.addEventListener("input", apply);
        apply();
      }
      toggle.querySelector(".heatmap-on").addEventListener("change", function (ev) {
        shown.forEach(function (d) { viewer.removeOverlay(d); });
        shown = [];
        if (ev.target.checked) {
          var item = viewer.world.getItemAt(0);
          map.cells.forEach(function (c) {
            var d = document.createElement("div");
            d.className = "heat heat-" + c[2];
            var rect = item.imageToViewportRectangle(c[0] * map.cell_px, c[1] * map.cell_px, map.cell_px, map.cell_px);
            viewer.addOverlay({ element: d, location: rect });
            shown.push(d);
          });
        }
        host.setAttribute("data-heatmap-shown", String(shown.length));
      });
    });
  };
})();
