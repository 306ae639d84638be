// The AI heatmap overlay: the phenotype of each scored 1 mm² grid cell of a biomarker run, drawn
// over the cell's tissue only (glass stays clear), shown with the #heatmap-toggle checkbox. The
// server draws it as an image over the slide (`heatmap.png` / `ai.png` beside the JSON), laid on
// the slide as a second OpenSeadragon image whose opacity the slider sets. Used by the slide
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
      var layer = null, wanted = false;
      var opacity = toggle.querySelector(".heatmap-opacity");
      var level = function () { return opacity ? opacity.value / 100 : 0.35; };
      if (opacity) opacity.addEventListener("input", function () { if (layer) layer.setOpacity(level()); });
      var shown = function (n) { host.setAttribute("data-heatmap-shown", String(n)); };
      toggle.querySelector(".heatmap-on").addEventListener("change", function (ev) {
        wanted = ev.target.checked;
        if (!wanted) {
          if (layer) viewer.world.removeItem(layer);
          layer = null;
          shown(0);
          return;
        }
        if (layer) return;
        viewer.addSimpleImage({
          url: url.replace(/\.json$/, ".png"),
          x: 0, y: 0, width: viewer.world.getItemAt(0).getBounds().width,
          opacity: level(),
          success: function (e) {
            if (!wanted || layer) { viewer.world.removeItem(e.item); return; }
            layer = e.item;
            shown(1);
          },
          error: function () { host.setAttribute("data-heatmap-error", "1"); }
        });
      });
    });
  };
})();
