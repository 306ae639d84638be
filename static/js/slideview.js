// What the slide viewer and the annotation workbench share: OpenSeadragon on a slide's Deep Zoom
// tiles, configured the same way, and the scale bar in µm/mm computed from the slide's microns
// per pixel.

/** The largest 1, 2 or 5 × 10^k µm not longer than `um`. */
export function niceLength(um) {
  var p = Math.pow(10, Math.floor(Math.log10(um)));
  var steps = [5, 2, 1];
  for (var i = 0; i < steps.length; i++) { if (steps[i] * p <= um) return steps[i] * p; }
  return p;
}

/** OpenSeadragon in `el` on the Deep Zoom descriptor `dzi`, its button images under `prefix`. */
export function openViewer(el, dzi, prefix) {
  var viewer = OpenSeadragon({
    element: el,
    tileSources: dzi,
    prefixUrl: prefix,
    showNavigator: true,
    navigatorPosition: "TOP_RIGHT",
    maxZoomPixelRatio: 2,
    visibilityRatio: 0.5,
    crossOriginPolicy: false,
    gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true }
  });
  window.evidentiaViewer = viewer;
  return viewer;
}

/** Keeps the scale bar `bar` (an element with `.bar` and `.label` inside) in step with the
 *  viewer's zoom for a slide of `mpp` µm per pixel: about 150 screen px of a round length.
 *  Hidden when the slide has no pixel size. */
export function scaleBar(viewer, mpp, bar) {
  function update() {
    if (!bar || !(mpp > 0) || !viewer.world.getItemCount()) { if (bar) bar.hidden = true; return; }
    var item = viewer.world.getItemAt(0);
    var zoom = item.viewportToImageZoom(viewer.viewport.getZoom(true)); // image px per screen px
    var umPerScreenPx = mpp / zoom;
    var um = niceLength(umPerScreenPx * 150);
    bar.hidden = false;
    bar.querySelector(".bar").style.width = Math.round(um / umPerScreenPx) + "px";
    bar.querySelector(".label").textContent = um >= 1000 ? (um / 1000) + " mm" : um + " µm";
  }
  viewer.addHandler("open", update);
  viewer.addHandler("animation", update);
  viewer.addHandler("resize", update);
  return update;
}
