// The AI heatmap overlay: the phenotype of each 1 mm² grid cell of a biomarker run as
// translucent OpenSeadragon overlays, shown with the #heatmap-toggle checkbox. A cell's class is
// drawn over the tissue tiles the run analysed in it (glass at a cell's edge stays clear); a
// run stored before tiles were recorded draws whole cells. Used by the slide viewer (reviewing
// roles) and the reading workbench (AI-assisted campaigns only); the server answers 404 to
// anyone blinded to the AI, and then the toggle stays hidden.
(function () {
  "use strict";

  // Level-0 rectangles [x, y, w, h, class] to draw: each tile cut along the cells it spans,
  // pieces of one cell side by side in a row joined into one.
  function pieces(map) {
    var cell = map.cell_px, out = [];
    if (!map.tiles || !map.tile_px) {
      map.cells.forEach(function (c) { out.push([c[0] * cell, c[1] * cell, cell, cell, c[2]]); });
      return out;
    }
    var classOf = {};
    map.cells.forEach(function (c) { classOf[c[0] + "," + c[1]] = c[2]; });
    var t = map.tile_px, last = {};
    map.tiles.slice().sort(function (a, b) { return a[1] - b[1] || a[0] - b[0]; }).forEach(function (tile) {
      var x0 = tile[0] * t, y0 = tile[1] * t, x1 = x0 + t, y1 = y0 + t;
      for (var row = Math.floor(y0 / cell); row * cell < y1; row++) {
        for (var col = Math.floor(x0 / cell); col * cell < x1; col++) {
          var k = classOf[col + "," + row];
          if (!k) continue;
          var px0 = Math.max(x0, col * cell), px1 = Math.min(x1, (col + 1) * cell);
          var py0 = Math.max(y0, row * cell), py1 = Math.min(y1, (row + 1) * cell);
          var key = py0 + "|" + py1 + "|" + k, prev = last[key];
          if (prev && Math.abs(prev[0] + prev[2] - px0) < 1e-6) {
            prev[2] = px1 - prev[0];
          } else {
            prev = [px0, py0, px1 - px0, py1 - py0, k];
            last[key] = prev;
            out.push(prev);
          }
        }
      }
    });
    return out;
  }

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
        var area = 0;
        if (ev.target.checked) {
          var item = viewer.world.getItemAt(0);
          pieces(map).forEach(function (p) {
            var d = document.createElement("div");
            d.className = "heat heat-" + p[4];
            viewer.addOverlay({ element: d, location: item.imageToViewportRectangle(p[0], p[1], p[2], p[3]) });
            shown.push(d);
            area += p[2] * p[3];
          });
        }
        host.setAttribute("data-heatmap-shown", String(shown.length));
        // The share of the scored cells' area drawn (1 when whole cells are drawn).
        var cells = map.cells.length * map.cell_px * map.cell_px;
        host.setAttribute("data-heatmap-cover", shown.length ? (area / cells).toFixed(3) : "0");
      });
    });
  };
})();
