// Regions on the workbench: the stored object plus what drawing and hit testing need, computed
// once. Pure functions: no DOM, no viewer.

/** The colour of a region without a class. */
export var NO_CLASS_RGB = [255, 200, 0];

/** A colour `#rrggbb` or `#rgb` as [r, g, b]; the no-class colour when it is neither. */
export function hexToRgb(hex) {
  var m = /^#?([0-9a-f]{6}|[0-9a-f]{3})$/i.exec(hex || "");
  if (!m) return NO_CLASS_RGB.slice();
  var h = m[1].length === 3 ? m[1].replace(/(.)/g, "$1$1") : m[1];
  return [parseInt(h.slice(0, 2), 16), parseInt(h.slice(2, 4), 16), parseInt(h.slice(4, 6), 16)];
}

// `data` is the server's Region object, kept as is so unknown fields survive the round trip.
// Coordinates are flattened [x0, y0, x1, y1, …]: points in `pts`, lines and polygon rings (of
// every polygon of a MultiPolygon; evenodd treats them alike) in `runs`. `b` is the bounds.
export function makeRecord(data) {
  var g = data.geometry || {};
  var cls = data["class"];
  var rgb = cls && cls.color && cls.color.length === 3 ? cls.color : NO_CLASS_RGB;
  var rec = { data: data, rgb: rgb, color: rgb.join(","), kind: null, pts: null, runs: [], b: [Infinity, Infinity, -Infinity, -Infinity] };
  if (g.Point) { // most regions, by far (imported detections): the short way
    var x = +g.Point[0], y = +g.Point[1];
    rec.kind = "points"; rec.pts = [x, y]; rec.b = [x, y, x, y];
    return rec;
  }
  if (g.MultiPoint) { rec.kind = "points"; rec.pts = flatten(g.MultiPoint); }
  else if (g.LineString) { rec.kind = "line"; rec.runs = [flatten(g.LineString)]; }
  else if (g.Polygon) { rec.kind = "polygon"; rec.runs = g.Polygon.map(flatten); }
  else if (g.MultiPolygon) {
    rec.kind = "polygon";
    g.MultiPolygon.forEach(function (poly) { poly.forEach(function (ring) { rec.runs.push(flatten(ring)); }); });
  }
  (rec.pts ? [rec.pts] : rec.runs).forEach(function (a) {
    var b = rec.b;
    for (var i = 0; i < a.length; i += 2) {
      if (a[i] < b[0]) b[0] = a[i]; if (a[i] > b[2]) b[2] = a[i];
      if (a[i + 1] < b[1]) b[1] = a[i + 1]; if (a[i + 1] > b[3]) b[3] = a[i + 1];
    }
  });
  return rec;
}

function flatten(positions) {
  var a = new Array(positions.length * 2);
  for (var i = 0; i < positions.length; i++) { a[2 * i] = +positions[i][0]; a[2 * i + 1] = +positions[i][1]; }
  return a;
}

function distToSegment2(px, py, x0, y0, x1, y1) {
  var dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
  var t = len2 ? Math.max(0, Math.min(1, ((px - x0) * dx + (py - y0) * dy) / len2)) : 0;
  var ex = x0 + t * dx - px, ey = y0 + t * dy - py;
  return ex * ex + ey * ey;
}

// Whether image point (x, y) hits the region: inside a polygon (evenodd over all rings, so
// holes are outside) or within `tol` image pixels of a point, line or polygon edge.
export function hits(rec, x, y, tol) {
  var tol2 = tol * tol, i, a;
  if (rec.kind === "points") {
    a = rec.pts;
    for (i = 0; i < a.length; i += 2) {
      if ((a[i] - x) * (a[i] - x) + (a[i + 1] - y) * (a[i + 1] - y) <= tol2) return true;
    }
    return false;
  }
  var inside = false;
  for (var r = 0; r < rec.runs.length; r++) {
    a = rec.runs[r];
    for (i = 2; i < a.length; i += 2) {
      var x0 = a[i - 2], y0 = a[i - 1], x1 = a[i], y1 = a[i + 1];
      if (distToSegment2(x, y, x0, y0, x1, y1) <= tol2) return true;
      if (rec.kind === "polygon" && ((y0 > y) !== (y1 > y)) && x < x0 + (y - y0) * (x1 - x0) / (y1 - y0)) inside = !inside;
    }
  }
  return inside;
}
