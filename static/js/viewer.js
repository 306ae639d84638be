// The slide viewer: the slide (see slideview.js) with its scale bar and, for those who may see
// the AI, the heatmap. Configured from data- attributes (no inline script).
import { openViewer, scaleBar } from "./slideview.js";

function start() {
  var el = document.getElementById("slide-viewer");
  if (!el || typeof OpenSeadragon === "undefined") return;
  var viewer = openViewer(el, el.getAttribute("data-dzi"), el.getAttribute("data-prefix"));
  scaleBar(viewer, parseFloat(el.getAttribute("data-mpp")), document.getElementById("scale-bar"));
  viewer.addHandler("open", function () { el.setAttribute("data-ready", "1"); });
  viewer.addHandler("tile-loaded", function () { el.setAttribute("data-tiles", "1"); });

  // The AI heatmap (managers, statisticians, monitors only: the server answers 404 to anyone
  // blinded to the AI).
  if (window.evidentiaHeatmap) window.evidentiaHeatmap(viewer, el.getAttribute("data-heatmap"), el);
}

if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
