// The annotation workbench: OpenSeadragon on the slide plus one <canvas> overlay of our own on
// which the reader draws points, rectangles and polygons with classes, and a slide-level form.
// Regions and form values are autosaved as a draft; the read is submitted through the form.
// Configured from data- attributes on #workbench (the CSP forbids inline script).
import { openViewer, scaleBar } from "./slideview.js";
import { hexToRgb, hits, makeRecord, NO_CLASS_RGB } from "./regions.js";

var AUTOSAVE_MS = 1500;
var POINT_RADIUS = 3.5;     // screen px: points keep their size at every zoom
var HIT_TOLERANCE = 6;      // screen px around points and lines that still selects them
var CLOSE_TOLERANCE = 8;    // screen px: a click this near the first vertex closes a polygon
var CLICK_SLOP = 4;         // screen px a press may move and still count as a click
var MANY_DOTS = 3000;       // above this many points in view they are drawn as small squares, not circles
var VERY_MANY_DOTS = 30000; // and above this many, as 2px squares
var SMALL = 24;             // screen px: smaller regions are drawn as pixels (see collectGroup)
var UNDO_LIMIT = 200;
var SUBMIT_CONFIRM = "Submit this read? It becomes final: changing it afterwards needs a reason.";
var TOOLS = ["pan", "point", "rectangle", "polygon", "select", "measure"];
var TOOL_KEYS = { o: "point", r: "rectangle", g: "polygon", s: "select" }; // v (pan) and m (measure) work read-only too
var REGION_LIST_MAX = 200; // the side list names this many regions; the count says the rest

// ---- small helpers ----

function thousands(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }

function clock(d) {
  function two(n) { return (n < 10 ? "0" : "") + n; }
  return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
}

// Image coordinates are stored to 1/100 pixel: finer than the viewer can place them, and short JSON.
function round2(v) { return Math.round(v * 100) / 100; }

// Keys typed into form fields are the field's, except on controls where letters type nothing.
function typing(t) {
  if (!t || !t.tagName) return false;
  if (t.isContentEditable || t.tagName === "TEXTAREA" || t.tagName === "SELECT") return true;
  return t.tagName === "INPUT" && !/^(radio|checkbox|button|submit|reset)$/.test(t.type);
}

function isControl(t) { return !!t && /^(INPUT|TEXTAREA|SELECT|BUTTON|A)$/.test(t.tagName || ""); }

function noop() {}

// ---- the workbench ----

function start() {
  var root = document.getElementById("workbench");
  var el = document.getElementById("slide-viewer");
  if (!root || !el || typeof OpenSeadragon === "undefined") return;

  var readonly = root.getAttribute("data-readonly") === "1";
  var saveUrl = root.getAttribute("data-save-url");
  // The read as this page loaded it: a save is refused (409) if it changed elsewhere meanwhile
  // (another tab, regions imported for the reader), instead of silently overwriting that.
  var base = root.getAttribute("data-updated") || null;
  var mpp = parseFloat(root.getAttribute("data-mpp"));
  var form = document.getElementById("read-form");
  var statusEl = document.getElementById("save-status");
  var countEl = document.getElementById("region-count");
  var toolButtons = Array.prototype.slice.call(document.querySelectorAll(".wb-tools [data-tool]"));
  var classButtons = Array.prototype.slice.call(document.querySelectorAll(".region-class"));

  var viewer = openViewer(el, root.getAttribute("data-dzi"), root.getAttribute("data-prefix"));
  // AI-assisted campaigns: the run's heatmap as a toggleable overlay.
  if (window.evidentiaHeatmap) window.evidentiaHeatmap(viewer, root.getAttribute("data-heatmap"), root);

  var records = [];          // in the server's order; new regions are appended
  var groups = [];           // records by colour, for drawing (see addToGroups)
  var undoStack = [];
  var tool = "pan";
  var currentClass = null;   // {name, color: [r, g, b]} for new regions
  var selected = null;       // a record
  var sketch = [];           // polygon vertices being drawn, image coordinates
  var gesture = null;        // the pointer press we own: {id, mode, x, y, lastX, lastY, curX, curY}
  var hover = null;          // last pointer position over the viewer, screen px
  var hidden = false;
  var spaceDown = false;
  // Drawing and saving wait for the saved regions: a save without them would erase them.
  var editable = false;
  var imageOpen = false, regionsLoaded = false;

  // ---- overlay canvas and drawing ----

  var canvas = document.createElement("canvas");
  canvas.className = "wb-overlay";
  viewer.canvas.appendChild(canvas);
  var ctx = canvas.getContext("2d");
  var frame = 0;             // pending requestAnimationFrame id
  var lastKey = "";          // transform and size of the last drawn frame, to skip identical ones
  var contentChanged = true;
  var lastDrawMs = 0;

  // The image → viewer-element affine transform at the current (animated) viewport:
  // X = a·x + c·y + e, Y = b·x + d·y + f. Three OSD calls per frame instead of one per vertex,
  // and it stays right under rotation; OSD's coordinate functions leave out the horizontal
  // flip (key f), which its drawer applies to the whole canvas, so we do too.
  function transform() {
    var item = viewer.world.getItemAt(0);
    if (!item) return null;
    var P = OpenSeadragon.Point, u = 1e4;
    var o = item.imageToViewerElementCoordinates(new P(0, 0));
    var px = item.imageToViewerElementCoordinates(new P(u, 0));
    var py = item.imageToViewerElementCoordinates(new P(0, u));
    var t = { a: (px.x - o.x) / u, b: (px.y - o.y) / u, c: (py.x - o.x) / u, d: (py.y - o.y) / u, e: o.x, f: o.y };
    if (viewer.viewport.getFlip()) { t.a = -t.a; t.c = -t.c; t.e = viewer.canvas.clientWidth - t.e; }
    t.det = t.a * t.d - t.b * t.c;
    t.scale = Math.sqrt(Math.abs(t.det)); // screen px per image px
    return t;
  }

  function toImage(t, sx, sy) {
    var X = sx - t.e, Y = sy - t.f;
    return { x: (t.d * X - t.c * Y) / t.det, y: (t.a * Y - t.b * X) / t.det };
  }

  function toScreen(t, x, y) { return { x: t.a * x + t.c * y + t.e, y: t.b * x + t.d * y + t.f }; }

  // Pointer position in viewer-element coordinates (the OSD canvas's box: no border).
  function local(ev) {
    var r = viewer.canvas.getBoundingClientRect();
    return { x: ev.clientX - r.left, y: ev.clientY - r.top };
  }

  function requestDraw() {
    contentChanged = true;
    if (!frame) frame = requestAnimationFrame(draw);
  }

  // Records by colour (canvas styles are set once per colour) and kind, with their bounds
  // copied into one Float64Array per list: a frame scans those contiguous numbers and touches
  // only the records in view (scanning 100,000 scattered record objects took 30 ms a frame).
  var groupByColor = {};

  function listFor(rec) {
    var g = groupByColor[rec.color];
    if (!g) {
      g = groupByColor[rec.color] = {
        stroke: "rgb(" + rec.color + ")", fill: "rgba(" + rec.color + ",0.15)",
        pixel: packPixel(rec.rgb[0], rec.rgb[1], rec.rgb[2], 255),
        polygons: newList(), lines: newList(), points: newList()
      };
      groups.push(g);
    }
    return rec.kind === "polygon" ? g.polygons : rec.kind === "line" ? g.lines : g.points;
  }

  function newList() { return { recs: [], b: new Float64Array(256), n: 0 }; }

  function addToGroups(rec) {
    if (!rec.kind) return;
    var list = listFor(rec);
    if (list.b.length < (list.n + 1) * 4) { var b = new Float64Array(list.b.length * 2); b.set(list.b); list.b = b; }
    list.b.set(rec.b, list.n * 4);
    list.recs.push(rec);
    list.n++;
  }

  function removeFromGroups(rec) {
    if (!rec.kind) return;
    var list = listFor(rec), i = list.recs.indexOf(rec);
    list.recs.splice(i, 1);
    list.b.copyWithin(i * 4, (i + 1) * 4, list.n * 4);
    list.n--;
  }

  // Adds one ring or line to the current path, skipping vertices less than a pixel from the
  // last one drawn (detailed imported outlines seen from far away).
  function tracePath(t, a, close) {
    var n = a.length;
    var x = t.a * a[0] + t.c * a[1] + t.e, y = t.b * a[0] + t.d * a[1] + t.f, lx = x, ly = y;
    ctx.moveTo(x, y);
    for (var i = 2; i < n; i += 2) {
      x = t.a * a[i] + t.c * a[i + 1] + t.e; y = t.b * a[i] + t.d * a[i + 1] + t.f;
      if (i < n - 2 && Math.abs(x - lx) + Math.abs(y - ly) < 1) continue;
      ctx.lineTo(x, y); lx = x; ly = y;
    }
    if (close) ctx.closePath();
  }

  // The indexes of the records in `list` whose bounds meet the visible image rectangle `v`.
  function inView(list, v) {
    var b = list.b, out = [];
    for (var i = 0, j = 0; i < list.n; i++, j += 4) {
      if (b[j] <= v[2] && b[j + 2] >= v[0] && b[j + 1] <= v[3] && b[j + 3] >= v[1]) out.push(i);
    }
    return out;
  }

  // Points, and regions under SMALL px on screen, go to the pixel layer: dots, or 1px outlines
  // from 3px up. Returns the larger polygons and the lines in view, which are canvas paths.
  function collectGroup(t, v, g) {
    var i, k, rec, a, x, y, seen, paths = [];
    seen = inView(g.polygons, v);
    for (i = 0; i < seen.length; i++) {
      rec = g.polygons.recs[seen[i]];
      var size = Math.max(rec.b[2] - rec.b[0], rec.b[3] - rec.b[1]) * t.scale;
      if (size < 3) {
        var c = toScreen(t, (rec.b[0] + rec.b[2]) / 2, (rec.b[1] + rec.b[3]) / 2);
        addDot(c.x, c.y, g.pixel);
      } else if (size < SMALL) {
        for (k = 0; k < rec.runs.length; k++) plotRun(t, rec.runs[k], g.pixel);
      } else {
        paths.push(rec);
      }
    }
    seen = inView(g.lines, v);
    for (i = 0; i < seen.length; i++) paths.push(g.lines.recs[seen[i]]);
    // A Point's bounds are the point: no need to look at the record.
    var b = g.points.b;
    for (i = 0; i < g.points.n; i++) {
      var j = i * 4;
      if (b[j] > v[2] || b[j + 2] < v[0] || b[j + 1] > v[3] || b[j + 3] < v[1]) continue;
      if (b[j] === b[j + 2] && b[j + 1] === b[j + 3]) { x = b[j]; y = b[j + 1]; addDot(t.a * x + t.c * y + t.e, t.b * x + t.d * y + t.f, g.pixel); continue; }
      a = g.points.recs[i].pts;
      for (k = 0; k < a.length; k += 2) {
        x = a[k]; y = a[k + 1];
        if (x >= v[0] && x <= v[2] && y >= v[1] && y <= v[3]) addDot(t.a * x + t.c * y + t.e, t.b * x + t.d * y + t.f, g.pixel);
      }
    }
    return paths;
  }

  // Canvas paths, drawn over the pixel layer so that drawn outlines stay visible over imported
  // detections: one path per region (measured in Chrome, it rasterizes several times faster
  // than one path per colour, and overlapping regions keep their fill), a light evenodd fill
  // (holes stay clear) and a 2px outline; styles set once per colour.
  function drawPaths(t, g, paths) {
    ctx.fillStyle = g.fill; ctx.strokeStyle = g.stroke; ctx.lineWidth = 2;
    for (var i = 0; i < paths.length; i++) {
      var rec = paths[i], polygon = rec.kind === "polygon";
      ctx.beginPath();
      for (var k = 0; k < rec.runs.length; k++) tracePath(t, rec.runs[k], polygon);
      if (polygon) ctx.fill("evenodd");
      ctx.stroke();
    }
  }

  // ---- the pixel layer ----
  // Points and small regions are written straight into an ImageData (point sprites, 1px
  // outlines) and composited with one drawImage. Measured on a CPU-rasterized canvas, a frame
  // with 100,000 points in view takes ~15 ms this way and 230 ms as canvas paths; one with
  // 5,000 mixed regions ~10 ms instead of 75 ms.

  var layer = document.createElement("canvas");
  var layerCtx = layer.getContext("2d");
  var image = null, pixels = null, W = 0, H = 0, dpr = 1;
  var box = [0, 0, 0, 0];    // the pixels written this frame: x0, y0, x1, y1 (device px)
  var dotXY = new Float32Array(4096), dotColor = new Uint32Array(2048), dotCount = 0;
  var sprites = {};

  // ImageData pixels are RGBA bytes; as little-endian 32-bit words that is ABGR.
  function packPixel(r, g, b, a) { return ((a << 24) | (b << 16) | (g << 8) | r) >>> 0; }

  function beginPixels() {
    W = canvas.width; H = canvas.height;
    if (!image || image.width !== W || image.height !== H) {
      layer.width = W; layer.height = H;
      image = layerCtx.createImageData(W, H);
      pixels = new Uint32Array(image.data.buffer);
    } else if (box[2] >= box[0]) {
      pixels.fill(0);
    }
    box[0] = W; box[1] = H; box[2] = -1; box[3] = -1;
    dotCount = 0;
  }

  function grow(x, y) {
    if (x < box[0]) box[0] = x; if (x > box[2]) box[2] = x;
    if (y < box[1]) box[1] = y; if (y > box[3]) box[3] = y;
  }

  // A 1px outline (Bresenham) in device pixels.
  function plotRun(t, a, color) {
    var px = Math.floor((t.a * a[0] + t.c * a[1] + t.e) * dpr), py = Math.floor((t.b * a[0] + t.d * a[1] + t.f) * dpr);
    grow(px, py);
    for (var i = 2; i < a.length; i += 2) {
      var qx = Math.floor((t.a * a[i] + t.c * a[i + 1] + t.e) * dpr), qy = Math.floor((t.b * a[i] + t.d * a[i + 1] + t.f) * dpr);
      grow(qx, qy);
      var dx = Math.abs(qx - px), dy = -Math.abs(qy - py), sx = px < qx ? 1 : -1, sy = py < qy ? 1 : -1, err = dx + dy;
      for (;;) {
        if (px >= 0 && py >= 0 && px < W && py < H) pixels[py * W + px] = color;
        if (px === qx && py === qy) break;
        var e2 = 2 * err;
        if (e2 >= dy) { err += dy; px += sx; }
        if (e2 <= dx) { err += dx; py += sy; }
      }
    }
  }

  // Dots are collected first: how many are in view decides how they look.
  function addDot(x, y, pixel) {
    if (dotCount === dotColor.length) {
      var xy = new Float32Array(dotXY.length * 2); xy.set(dotXY); dotXY = xy;
      var c = new Uint32Array(dotColor.length * 2); c.set(dotColor); dotColor = c;
    }
    dotXY[2 * dotCount] = x; dotXY[2 * dotCount + 1] = y; dotColor[dotCount++] = pixel;
  }

  // A dot's pixels relative to its centre, in device pixels: a class-coloured disc with a
  // white rim (antialiased by 4×4 supersampling), or a plain square when there are many.
  // `rim[i]` is 0 for a pixel in the class colour, else the rim pixel's value.
  function sprite(kind) {
    var key = kind + "@" + dpr;
    if (sprites[key]) return sprites[key];
    var sp = { dx: [], dy: [], rim: [] }, x, y;
    if (kind === "circle") {
      var r = POINT_RADIUS * dpr, inner = r - dpr, n = Math.ceil(r);
      for (y = -n; y <= n; y++) {
        for (x = -n; x <= n; x++) {
          var cover = 0, core = 0;
          for (var sy = 0; sy < 4; sy++) {
            for (var sx = 0; sx < 4; sx++) {
              var d = Math.hypot(x + (sx + 0.5) / 4 - 0.5, y + (sy + 0.5) / 4 - 0.5);
              if (d <= r) cover++;
              if (d <= inner) core++;
            }
          }
          if (!cover) continue;
          sp.dx.push(x); sp.dy.push(y);
          sp.rim.push(core >= 8 ? 0 : packPixel(255, 255, 255, Math.round(230 * cover / 16)));
        }
      }
    } else {
      var side = Math.max(1, Math.round((kind === "small" ? 2 : 3) * dpr)), lo = -Math.floor(side / 2);
      for (y = lo; y < lo + side; y++) for (x = lo; x < lo + side; x++) { sp.dx.push(x); sp.dy.push(y); sp.rim.push(0); }
    }
    sp.extent = Math.max.apply(null, sp.dx.map(Math.abs).concat(sp.dy.map(Math.abs)));
    return (sprites[key] = sp);
  }

  function stampDots() {
    var sp = sprite(dotCount > VERY_MANY_DOTS ? "small" : dotCount > MANY_DOTS ? "square" : "circle");
    var m = sp.dx.length, e = sp.extent, offset = new Int32Array(m), k;
    for (k = 0; k < m; k++) offset[k] = sp.dy[k] * W + sp.dx[k];
    for (var i = 0; i < dotCount; i++) {
      var px = Math.floor(dotXY[2 * i] * dpr), py = Math.floor(dotXY[2 * i + 1] * dpr), color = dotColor[i];
      if (px < -e || py < -e || px >= W + e || py >= H + e) continue;
      grow(px - e, py - e); grow(px + e, py + e);
      if (px >= e && py >= e && px < W - e && py < H - e) {
        var base = py * W + px;
        for (k = 0; k < m; k++) pixels[base + offset[k]] = sp.rim[k] || color;
      } else {
        for (k = 0; k < m; k++) {
          var qx = px + sp.dx[k], qy = py + sp.dy[k];
          if (qx >= 0 && qy >= 0 && qx < W && qy < H) pixels[qy * W + qx] = sp.rim[k] || color;
        }
      }
    }
  }

  // Copies the written part of the pixel layer onto the overlay.
  function finishPixels() {
    if (dotCount) stampDots();
    var x0 = Math.max(0, box[0]), y0 = Math.max(0, box[1]), x1 = Math.min(W - 1, box[2]), y1 = Math.min(H - 1, box[3]);
    if (x1 < x0 || y1 < y0) return;
    layerCtx.putImageData(image, 0, 0, x0, y0, x1 - x0 + 1, y1 - y0 + 1);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(layer, x0, y0, x1 - x0 + 1, y1 - y0 + 1, x0, y0, x1 - x0 + 1, y1 - y0 + 1);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  }

  function traceRecord(t, rec) {
    ctx.beginPath();
    if (rec.kind === "points") {
      for (var i = 0; i < rec.pts.length; i += 2) {
        var p = toScreen(t, rec.pts[i], rec.pts[i + 1]);
        ctx.moveTo(p.x + POINT_RADIUS + 3, p.y); ctx.arc(p.x, p.y, POINT_RADIUS + 3, 0, 2 * Math.PI);
      }
    } else {
      for (var k = 0; k < rec.runs.length; k++) tracePath(t, rec.runs[k], rec.kind === "polygon");
    }
  }

  function drawSelection(t) {
    traceRecord(t, selected);
    ctx.setLineDash([]);
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 6; ctx.stroke();
    ctx.strokeStyle = "#111"; ctx.lineWidth = 2; ctx.setLineDash([6, 4]); ctx.stroke();
    ctx.setLineDash([]);
  }

  // The region being drawn: a polygon's vertices with a dashed line to the pointer, or the
  // rectangle being dragged.
  function drawSketch(t) {
    var color = "rgb(" + (currentClass ? currentClass.color : NO_CLASS_RGB).join(",") + ")";
    ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 2;
    if (gesture && gesture.mode === "rect") {
      var x = Math.min(gesture.x, gesture.curX), y = Math.min(gesture.y, gesture.curY);
      ctx.globalAlpha = 0.15; ctx.fillRect(x, y, Math.abs(gesture.curX - gesture.x), Math.abs(gesture.curY - gesture.y));
      ctx.globalAlpha = 1; ctx.strokeRect(x, y, Math.abs(gesture.curX - gesture.x), Math.abs(gesture.curY - gesture.y));
    }
    if (!sketch.length) return;
    var pts = sketch.map(function (p) { return toScreen(t, p[0], p[1]); });
    ctx.beginPath();
    pts.forEach(function (p, i) { if (i) ctx.lineTo(p.x, p.y); else ctx.moveTo(p.x, p.y); });
    ctx.stroke();
    if (hover) {
      ctx.beginPath(); ctx.setLineDash([5, 4]);
      ctx.moveTo(pts[pts.length - 1].x, pts[pts.length - 1].y); ctx.lineTo(hover.x, hover.y);
      ctx.stroke(); ctx.setLineDash([]);
    }
    ctx.beginPath();
    pts.forEach(function (p) { ctx.moveTo(p.x + 3, p.y); ctx.arc(p.x, p.y, 3, 0, 2 * Math.PI); });
    ctx.fill();
    if (hover && pts.length >= 3 && Math.hypot(hover.x - pts[0].x, hover.y - pts[0].y) <= CLOSE_TOLERANCE) {
      ctx.beginPath(); ctx.arc(pts[0].x, pts[0].y, CLOSE_TOLERANCE, 0, 2 * Math.PI);
      ctx.strokeStyle = "#fff"; ctx.stroke();
    }
  }

  function draw() {
    frame = 0;
    var t = transform();
    if (!t) return;
    dpr = window.devicePixelRatio || 1;
    var w = viewer.canvas.clientWidth, h = viewer.canvas.clientHeight;
    var key = [t.a, t.b, t.c, t.d, t.e, t.f, w, h, dpr].join();
    if (key === lastKey && !contentChanged) return; // OSD redraws for tile loads too
    lastKey = key; contentChanged = false;
    var t0 = performance.now();
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (!hidden) {
      // The visible image rectangle, grown by what a point or stroke may stick out on screen.
      var m = (POINT_RADIUS + 4) / t.scale;
      var cs = [toImage(t, 0, 0), toImage(t, w, 0), toImage(t, 0, h), toImage(t, w, h)];
      var v = [Infinity, Infinity, -Infinity, -Infinity];
      cs.forEach(function (p) { v[0] = Math.min(v[0], p.x - m); v[1] = Math.min(v[1], p.y - m); v[2] = Math.max(v[2], p.x + m); v[3] = Math.max(v[3], p.y + m); });
      beginPixels();
      var paths = groups.map(function (g) { return collectGroup(t, v, g); });
      finishPixels();
      groups.forEach(function (g, i) { drawPaths(t, g, paths[i]); });
      if (selected) drawSelection(t);
    }
    drawSketch(t);
    drawMeasurement(t);
    lastDrawMs = performance.now() - t0;
  }

  // ---- measuring: a length (drag) or a rectangle's area (Shift+drag), in µm and mm² from the
  // slide's microns per pixel; shown on the slide and beside it, never saved as a region ----

  var measurement = null;    // {a: [x, y], b: [x, y], area: bool} in image pixels
  var measureEl = document.getElementById("measure-readout");

  function measureOf(g) {
    var t = transform();
    if (!t) return null;
    var a = toImage(t, g.x, g.y), b = toImage(t, g.curX, g.curY);
    return { a: [a.x, a.y], b: [b.x, b.y], area: !!g.area };
  }

  function lengthText(um) {
    return um >= 1000 ? (um / 1000).toFixed(3) + " mm" : um.toFixed(1) + " µm";
  }

  /** The measurement as text: "Length 523.4 µm" or "Area 0.1234 mm² (350.0 µm × 352.6 µm)". */
  function measureText(m) {
    var dx = Math.abs(m.b[0] - m.a[0]), dy = Math.abs(m.b[1] - m.a[1]);
    if (!(mpp > 0)) return "The slide has no pixel size: " + Math.round(Math.hypot(dx, dy)) + " px";
    if (m.area) {
      var w = dx * mpp, h = dy * mpp, mm2 = (w * h) / 1e6;
      return "Area " + (mm2 >= 0.01 ? mm2.toFixed(4) + " mm²" : Math.round(w * h) + " µm²") + " (" + lengthText(w) + " × " + lengthText(h) + ")";
    }
    return "Length " + lengthText(Math.hypot(dx, dy) * mpp);
  }

  function setMeasurement(m) {
    measurement = m;
    if (measureEl) {
      measureEl.textContent = m ? measureText(m) : "";
      if (m) { measureEl.setAttribute("data-um", String(Math.hypot(m.b[0] - m.a[0], m.b[1] - m.a[1]) * mpp)); } else { measureEl.removeAttribute("data-um"); }
    }
    contentChanged = true;
    requestDraw();
  }

  function drawMeasurement(t) {
    if (!measurement) return;
    var a = toScreen(t, measurement.a[0], measurement.a[1]), b = toScreen(t, measurement.b[0], measurement.b[1]);
    ctx.save();
    ctx.lineWidth = 2; ctx.strokeStyle = "#111"; ctx.setLineDash([6, 4]);
    if (measurement.area) ctx.strokeRect(Math.min(a.x, b.x), Math.min(a.y, b.y), Math.abs(b.x - a.x), Math.abs(b.y - a.y));
    else { ctx.beginPath(); ctx.moveTo(a.x, a.y); ctx.lineTo(b.x, b.y); ctx.stroke(); }
    ctx.strokeStyle = "#fff"; ctx.lineDashOffset = 5;
    if (measurement.area) ctx.strokeRect(Math.min(a.x, b.x), Math.min(a.y, b.y), Math.abs(b.x - a.x), Math.abs(b.y - a.y));
    else { ctx.beginPath(); ctx.moveTo(a.x, a.y); ctx.lineTo(b.x, b.y); ctx.stroke(); }
    var text = measureText(measurement);
    ctx.setLineDash([]); ctx.font = "13px system-ui, sans-serif";
    var w = ctx.measureText(text).width;
    ctx.fillStyle = "rgba(0,0,0,.75)"; ctx.fillRect(b.x + 8, b.y + 8, w + 10, 20);
    ctx.fillStyle = "#fff"; ctx.fillText(text, b.x + 13, b.y + 22);
    ctx.restore();
  }

  // ---- magnification: the objective's equivalent (10 µm per screen pixel is 1×, so 0.25 µm is
  // 40×), and presets that zoom there ----

  var magEl = document.getElementById("magnification");
  function imageZoom() {
    var item = viewer.world.getItemCount() ? viewer.world.getItemAt(0) : null;
    return item ? item.viewportToImageZoom(viewer.viewport.getZoom(true)) : 0;
  }
  function updateMagnification() {
    var z = imageZoom();
    if (!magEl || !(mpp > 0) || !z) return;
    var mag = (10 * z) / mpp;
    magEl.textContent = (mag >= 10 ? Math.round(mag) : Math.round(mag * 10) / 10) + "×";
  }
  viewer.addHandler("animation", updateMagnification);
  viewer.addHandler("open", updateMagnification);
  Array.prototype.forEach.call(document.querySelectorAll("[data-mag]"), function (b) {
    b.addEventListener("click", function () {
      var item = viewer.world.getItemCount() ? viewer.world.getItemAt(0) : null;
      if (!item || !(mpp > 0)) return;
      viewer.viewport.zoomTo(item.imageToViewportZoom((parseFloat(b.getAttribute("data-mag")) * mpp) / 10));
    });
  });

  // ---- scale bar (slideview.js) ----

  scaleBar(viewer, mpp, document.getElementById("scale-bar"));

  // OSD raises update-viewport inside its own animation frame, after moving the viewport:
  // drawing right there keeps the overlay in step with the tiles (a new rAF would lag a frame).
  viewer.addHandler("update-viewport", function () {
    if (frame) { cancelAnimationFrame(frame); frame = 0; }
    draw();
  });
  viewer.addHandler("resize", requestDraw);
  viewer.addHandler("open", function () { imageOpen = true; requestDraw(); ready(); });
  viewer.addHandler("open-failed", function () { setStatus("error", "The slide could not be opened."); });

  function ready() {
    if (imageOpen && regionsLoaded) el.setAttribute("data-ready", "1");
  }

  // ---- regions: loading, adding, deleting, undo ----

  function updateCount() {
    if (countEl) countEl.textContent = thousands(records.length) + (records.length === 1 ? " region" : " regions") + (hidden ? " (hidden)" : "");
    renderRegionList();
  }

  // The read's regions beside the slide: each selects (and shows) its region; Delete removes it.
  var listEl = document.getElementById("region-list");
  function regionName(rec) {
    var cls = rec.data["class"] ? rec.data["class"].name : "no class";
    var kind = rec.kind === "points" ? (rec.pts.length > 2 ? (rec.pts.length / 2) + " points" : "point") : rec.kind;
    return cls + " · " + kind;
  }
  function renderRegionList() {
    if (!listEl) return;
    listEl.textContent = "";
    records.slice(0, REGION_LIST_MAX).forEach(function (rec, i) {
      var li = document.createElement("li");
      var pick = document.createElement("button");
      pick.type = "button"; pick.className = "linklike";
      pick.textContent = (i + 1) + ". " + regionName(rec);
      pick.setAttribute("aria-pressed", selected === rec ? "true" : "false");
      pick.addEventListener("click", function () { showRegion(rec); });
      li.appendChild(pick);
      if (editable) {
        var del = document.createElement("button");
        del.type = "button"; del.className = "small danger"; del.textContent = "Delete";
        del.setAttribute("aria-label", "Delete region " + (i + 1));
        del.addEventListener("click", function () { deleteRecord(rec); });
        li.appendChild(del);
      }
      listEl.appendChild(li);
    });
    if (records.length > REGION_LIST_MAX) {
      var more = document.createElement("li");
      more.className = "muted";
      more.textContent = "… and " + thousands(records.length - REGION_LIST_MAX) + " more (select them on the slide)";
      listEl.appendChild(more);
    }
  }
  function showRegion(rec) {
    var item = viewer.world.getItemCount() ? viewer.world.getItemAt(0) : null;
    if (!item) return;
    hidden = false;
    if (editable) setTool("select");
    selected = rec;
    var b = rec.b, pad = Math.max(b[2] - b[0], b[3] - b[1], 200) * 0.5;
    viewer.viewport.fitBounds(item.imageToViewportRectangle(b[0] - pad, b[1] - pad, b[2] - b[0] + 2 * pad, b[3] - b[1] + 2 * pad));
    updateCount();
    requestDraw();
  }

  var regionsReady = fetch(root.getAttribute("data-regions-url"), { headers: { Accept: "application/json" }, credentials: "same-origin" })
    .then(function (res) {
      if (!res.ok) throw new Error(res.status + " " + res.statusText);
      return res.json();
    })
    .then(function (body) {
      records = (body.regions || []).map(makeRecord);
      records.forEach(addToGroups);
      regionsLoaded = true;
      setEditing(!readonly);
      updateCount();
      requestDraw();
      ready();
      return true;
    })
    .catch(function (err) {
      setStatus("error", "Regions could not be loaded (" + err.message + "); reload the page. Editing is off.");
      return false;
    });

  function insertRecord(rec, index) {
    records.splice(index, 0, rec);
    addToGroups(rec);
  }

  // Removes the record and returns where it was.
  function removeRecord(rec) {
    var i = records.indexOf(rec);
    records.splice(i, 1);
    removeFromGroups(rec);
    if (selected === rec) selected = null;
    return i;
  }

  function newRegion(geometry) {
    // The schema says how a class is drawn (data-shape: point, area or any); the server refuses
    // the rest, so say it here instead of letting the next save fail.
    var shape = currentClass && currentClass.shape;
    var isPoint = !!geometry.Point;
    if ((shape === "point" && !isPoint) || (shape === "area" && isPoint)) {
      setStatus("error", currentClass.name + " is drawn as " + shape + "s: pick another tool or class");
      requestDraw();
      return;
    }
    var data = {};
    if (currentClass) data["class"] = { name: currentClass.name, color: currentClass.color.slice() };
    data.geometry = geometry;
    var rec = makeRecord(data);
    insertRecord(rec, records.length);
    pushUndo({ op: "add", rec: rec });
    hidden = false; // the reader should see what was just drawn
    regionsChanged();
  }

  function deleteRecord(rec) {
    pushUndo({ op: "delete", rec: rec, index: removeRecord(rec) });
    regionsChanged();
  }

  function pushUndo(entry) {
    undoStack.push(entry);
    if (undoStack.length > UNDO_LIMIT) undoStack.shift();
  }

  function undo() {
    var u = undoStack.pop();
    if (!u) return;
    if (u.op === "add") removeRecord(u.rec);
    else insertRecord(u.rec, Math.min(u.index, records.length));
    regionsChanged();
  }

  function regionsChanged() {
    updateCount();
    requestDraw();
    changed();
  }

  // ---- drawing tools ----

  function setTool(name) {
    if (TOOLS.indexOf(name) < 0 || (!editable && name !== "pan" && name !== "measure")) return;
    if (name !== tool) { // picking the same tool again keeps the polygon being drawn
      tool = name;
      sketch = [];
      if (gesture && gesture.mode === "rect") gesture = null;
      if (name !== "select") selected = null;
    }
    toolButtons.forEach(function (b) {
      var on = b.getAttribute("data-tool") === name;
      b.classList.toggle("active", on);
      b.setAttribute("aria-pressed", on ? "true" : "false");
    });
    el.classList.toggle("wb-draw", name !== "pan" && name !== "select");
    if (name !== "measure") setMeasurement(null);
    el.classList.toggle("wb-select", name === "select");
    requestDraw();
  }

  function setClass(button) {
    if (!button) return;
    currentClass = {
      name: button.getAttribute("data-class"),
      color: hexToRgb(button.getAttribute("data-color")),
      shape: button.getAttribute("data-shape") || "any"
    };
    classButtons.forEach(function (b) {
      b.classList.toggle("active", b === button);
      b.setAttribute("aria-pressed", b === button ? "true" : "false");
    });
    requestDraw();
  }

  classButtons.forEach(function (b) {
    // The swatch colour, set through the CSSOM (allowed by the CSP, unlike style attributes).
    b.style.setProperty("--wb-color", b.getAttribute("data-color"));
    b.addEventListener("click", function () { if (editable) setClass(b); });
  });
  toolButtons.forEach(function (b) {
    b.addEventListener("click", function () { setTool(b.getAttribute("data-tool")); });
  });
  setClass(classButtons[0]);
  setEditing(false);

  // Off until the regions are loaded, for good on read-only reads: pan and look only.
  function setEditing(on) {
    editable = on;
    if (!on) setTool("pan");
    toolButtons.concat(classButtons).forEach(function (b) {
      var t = b.getAttribute("data-tool");
      if (t !== "pan" && t !== "measure") b.disabled = !on;
    });
  }

  function finishPolygon() {
    if (sketch.length < 3) return;
    var ring = sketch.concat([sketch[0].slice()]);
    sketch = [];
    newRegion({ Polygon: [ring] });
  }

  function imagePoint(t, sx, sy) {
    var p = toImage(t, sx, sy);
    return [round2(p.x), round2(p.y)];
  }

  // A click (press and release within CLICK_SLOP) with the current tool, at screen (sx, sy).
  function clickAt(sx, sy) {
    var t = transform();
    if (!t) return;
    if (tool === "point") {
      newRegion({ Point: imagePoint(t, sx, sy) });
    } else if (tool === "polygon") {
      if (sketch.length) {
        var first = toScreen(t, sketch[0][0], sketch[0][1]);
        var last = toScreen(t, sketch[sketch.length - 1][0], sketch[sketch.length - 1][1]);
        if (sketch.length >= 3 && Math.hypot(sx - first.x, sy - first.y) <= CLOSE_TOLERANCE) { finishPolygon(); return; }
        if (Math.hypot(sx - last.x, sy - last.y) <= CLICK_SLOP) return; // the second click of a double-click
      }
      sketch.push(imagePoint(t, sx, sy));
      requestDraw();
    } else if (tool === "select") {
      selected = hidden ? null : regionAt(t, sx, sy);
      renderRegionList();
      requestDraw();
    }
  }

  // The region under screen (sx, sy): the smallest by bounds area, the topmost among equals.
  function regionAt(t, sx, sy) {
    var p = toImage(t, sx, sy), tol = HIT_TOLERANCE / t.scale;
    var best = null, bestArea = Infinity;
    for (var i = records.length - 1; i >= 0; i--) {
      var rec = records[i], b = rec.b;
      if (!rec.kind || p.x < b[0] - tol || p.x > b[2] + tol || p.y < b[1] - tol || p.y > b[3] + tol) continue;
      var area = (b[2] - b[0]) * (b[3] - b[1]);
      if (area < bestArea && hits(rec, p.x, p.y, tol)) { best = rec; bestArea = area; }
    }
    return best;
  }

  function finishRectangle(g) {
    var t = transform();
    if (!t || Math.abs(g.curX - g.x) < 3 || Math.abs(g.curY - g.y) < 3) return;
    var a = imagePoint(t, g.x, g.y), b = imagePoint(t, g.curX, g.curY);
    var x = Math.min(a[0], b[0]), y = Math.min(a[1], b[1]), x1 = Math.max(a[0], b[0]), y1 = Math.max(a[1], b[1]);
    newRegion({ Polygon: [[[x, y], [x1, y], [x1, y1], [x, y1], [x, y]]] });
  }

  // ---- pointer input ----
  // With the pan tool OSD has the mouse to itself. With the other tools we take presses on the
  // image first (capture phase on the viewer element) and keep them from OSD, so it neither
  // pans nor zooms on click; the wheel still reaches OSD and zooms. A drag pans (our own pan,
  // via the viewport) with space held or the middle button, and also with the point, polygon
  // and select tools, where only clicks mean something. Navigator and zoom buttons are outside
  // viewer.canvas and untouched.

  function own(ev) { ev.stopPropagation(); ev.preventDefault(); }

  el.addEventListener("pointerdown", function (ev) {
    if (tool === "pan" || !viewer.canvas.contains(ev.target) || gesture) return;
    if (ev.button !== 0 && ev.button !== 1) return;
    own(ev);
    if (document.activeElement !== viewer.canvas) viewer.canvas.focus({ preventScroll: true }); // keys leave the form
    var p = local(ev);
    var pan = ev.button === 1 || spaceDown;
    var mode = pan ? "pan" : tool === "rectangle" ? "rect" : tool === "measure" ? "measure" : "press";
    gesture = { id: ev.pointerId, mode: mode, x: p.x, y: p.y, lastX: p.x, lastY: p.y, curX: p.x, curY: p.y, area: ev.shiftKey };
    el.setPointerCapture(ev.pointerId);
    if (pan) el.classList.add("wb-grabbing");
  }, true);

  el.addEventListener("pointermove", function (ev) {
    var p = local(ev);
    if (!gesture || ev.pointerId !== gesture.id) {
      if (sketch.length) { hover = p; requestDraw(); }
      return;
    }
    own(ev);
    hover = p;
    gesture.curX = p.x; gesture.curY = p.y; gesture.area = ev.shiftKey;
    if (gesture.mode === "measure") setMeasurement(measureOf(gesture));
    if (gesture.mode === "press" && Math.hypot(p.x - gesture.x, p.y - gesture.y) > CLICK_SLOP) {
      gesture.mode = "pan";
      el.classList.add("wb-grabbing");
    }
    if (gesture.mode === "pan") {
      viewer.viewport.panBy(viewer.viewport.deltaPointsFromPixels(new OpenSeadragon.Point(gesture.lastX - p.x, gesture.lastY - p.y)));
    }
    gesture.lastX = p.x; gesture.lastY = p.y;
    requestDraw();
  }, true);

  function endGesture(ev, cancelled) {
    if (!gesture || ev.pointerId !== gesture.id) return;
    own(ev);
    var g = gesture;
    gesture = null;
    el.classList.remove("wb-grabbing");
    if (el.hasPointerCapture(ev.pointerId)) el.releasePointerCapture(ev.pointerId);
    if (g.mode === "pan") viewer.viewport.applyConstraints();
    else if (cancelled) requestDraw();
    else if (g.mode === "rect") { finishRectangle(g); requestDraw(); }
    else if (g.mode === "measure") { g.area = ev.shiftKey || g.area; setMeasurement(measureOf(g)); }
    else clickAt(g.x, g.y);
  }
  el.addEventListener("pointerup", function (ev) { endGesture(ev, false); }, true);
  el.addEventListener("pointercancel", function (ev) { endGesture(ev, true); }, true);

  // The browser still sends a dblclick after our presses, aimed at the viewer element (which
  // captured the pointer): a double-click closes the polygon being drawn, and never reaches
  // OSD's double-click zoom.
  el.addEventListener("dblclick", function (ev) {
    if (tool === "pan" || !(ev.target === el || viewer.canvas.contains(ev.target))) return;
    own(ev);
    if (tool === "polygon") finishPolygon();
  }, true);
  el.addEventListener("pointerleave", function () { if (hover) { hover = null; requestDraw(); } });

  // ---- keys ----
  // One capture-phase listener on window runs before app.js's document listener; keys the
  // workbench uses stop there, so app.js never sees them (its "g then s" prefix would
  // otherwise take the polygon key) and neither does OSD's own keyboard handling on its canvas
  // ("r" rotates, "s" pans there). Unused keys (n, p, ?, /, arrows, +/-) pass on. Read-only,
  // only h and v are taken, so "g s" to the studies works there as elsewhere.

  function take(ev) { ev.preventDefault(); ev.stopPropagation(); }

  window.addEventListener("keydown", function (ev) {
    var key = ev.key, mod = ev.ctrlKey || ev.metaKey;
    if (mod && !ev.altKey && !ev.shiftKey && (key === "s" || key === "S")) {
      if (readonly) return;
      take(ev); save().catch(noop);
      return;
    }
    if (mod && key === "Enter") {
      if (readonly || !form) return;
      take(ev); submitRead(true);
      return;
    }
    if (mod && !ev.shiftKey && (key === "z" || key === "Z")) {
      if (!editable || typing(ev.target)) return;
      take(ev); undo();
      return;
    }
    if (mod || ev.altKey || typing(ev.target)) return;
    if (key === " ") {
      // Space held: drag to pan while a drawing tool is on (buttons and fields keep their space).
      if (tool !== "pan" && !isControl(ev.target)) { take(ev); spaceDown = true; el.classList.add("wb-space"); }
      return;
    }
    var lower = key.length === 1 ? key.toLowerCase() : key;
    if (lower === "h") { take(ev); hidden = !hidden; if (hidden) selected = null; updateCount(); requestDraw(); return; }
    if (lower === "v") { take(ev); setTool("pan"); return; }
    if (lower === "m") { take(ev); setTool("measure"); return; }
    if (key === "Escape" && measurement) { take(ev); setMeasurement(null); return; }
    if (!editable) return;
    if (TOOL_KEYS[lower]) { take(ev); setTool(TOOL_KEYS[lower]); return; }
    if (/^[1-9]$/.test(key)) {
      var b = document.querySelector('.region-class[data-hotkey="' + key + '"]');
      if (b) { take(ev); setClass(b); }
      return;
    }
    if (key === "Escape") {
      if (sketch.length || (gesture && gesture.mode === "rect")) {
        take(ev); sketch = [];
        if (gesture && gesture.mode === "rect") { el.releasePointerCapture(gesture.id); gesture = null; }
        requestDraw();
      } else if (selected) { take(ev); selected = null; requestDraw(); }
      return;
    }
    if (key === "Enter" && sketch.length && !isControl(ev.target)) { take(ev); finishPolygon(); return; }
    if (key === "Backspace" && sketch.length) { take(ev); sketch.pop(); requestDraw(); return; }
    if ((key === "Delete" || key === "Backspace") && selected) { take(ev); deleteRecord(selected); }
  }, true);

  window.addEventListener("keyup", function (ev) {
    if (ev.key === " " && spaceDown) { spaceDown = false; el.classList.remove("wb-space"); }
  }, true);
  window.addEventListener("blur", function () { spaceDown = false; el.classList.remove("wb-space"); });

  // ---- saving ----

  var version = 0;       // counts changes
  var savedVersion = 0;  // the change count the server last stored
  var timer = 0;         // pending autosave
  var inflight = null;   // the POST under way
  var queued = null;     // the save to run once it is done (only ever one)
  var submitting = false;

  function dirty() { return version !== savedVersion; }

  function setStatus(state, text) {
    if (!statusEl) return;
    statusEl.setAttribute("data-state", state);
    statusEl.textContent = text;
  }

  function changed() {
    version++;
    if (!inflight) setStatus("dirty", "Unsaved changes");
    clearTimeout(timer);
    timer = setTimeout(function () { save().catch(noop); }, AUTOSAVE_MS);
  }

  // The slide-level fields, by name without the "field." prefix, as strings as the form holds
  // them ("" when empty, the checked value for radios).
  function formValues() {
    var values = {};
    if (!form) return values;
    Array.prototype.forEach.call(form.elements, function (f) {
      if (!f.name || f.name.indexOf("field.") !== 0) return;
      var k = f.name.slice(6);
      if (f.type === "radio" || f.type === "checkbox") {
        if (!Object.prototype.hasOwnProperty.call(values, k)) values[k] = "";
        if (f.checked) values[k] = f.value;
      } else {
        values[k] = f.value;
      }
    });
    return values;
  }

  function csrfToken() {
    var input = (form && form.querySelector('input[name="csrf_token"]')) || document.querySelector('input[name="csrf_token"]');
    return input ? input.value : "";
  }

  // Saves the draft as it is now. Resolves once the server has it; rejects (status shows why)
  // otherwise. A call while a save is in flight waits for it and then saves once more.
  function save() {
    clearTimeout(timer);
    if (!regionsLoaded && !readonly) {
      return regionsReady.then(function (ok) { if (!ok) throw new Error("the regions could not be loaded"); return save(); });
    }
    if (!editable) return Promise.reject(new Error("read-only"));
    if (inflight) {
      if (!queued) queued = inflight.catch(noop).then(function () { queued = null; return save(); });
      return queued;
    }
    if (!dirty()) return Promise.resolve();
    var sending = version;
    // Each region's JSON is made once and kept (regions never change, they are only added and
    // deleted): with 100,000 imported regions that takes ~100 ms off every save's stall.
    var body = '{"values":' + JSON.stringify(formValues()) + ',"regions":[' +
      records.map(function (r) { return r.json || (r.json = JSON.stringify(r.data)); }).join(",") +
      '],"base":' + JSON.stringify(base) + "}";
    setStatus("saving", "Saving…");
    inflight = fetch(saveUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrfToken() },
      body: body
    }).then(function (res) {
      return res.text().then(function (text) {
        var reply = null;
        try { reply = JSON.parse(text); } catch (e) { reply = null; }
        if (res.ok && !res.redirected && reply && reply.saved_at) return reply;
        // The API's errors are {"error": {"code", "message", "fields"}}.
        if (reply && reply.error) throw new Error(reply.error.message || reply.error);
        throw new Error(res.ok ? "unexpected answer from the server (signed out?)" : res.status + " " + res.statusText);
      });
    }).then(function (reply) {
      inflight = null;
      if (reply.updated_at) base = reply.updated_at;
      savedVersion = Math.max(savedVersion, sending);
      root.setAttribute("data-saved", String(typeof reply.region_count === "number" ? reply.region_count : records.length));
      if (dirty()) setStatus("dirty", "Unsaved changes");
      else setStatus("saved", "Saved " + clock(new Date()));
    }, function (err) {
      inflight = null;
      setStatus("error", "Not saved: " + (err && err.message ? err.message : "network error"));
      throw err;
    });
    return inflight;
  }

  if (!readonly && form) {
    form.addEventListener("input", function (ev) { if (ev.target.name && ev.target.name.indexOf("field.") === 0) changed(); });
    form.addEventListener("change", function (ev) { if (ev.target.name && ev.target.name.indexOf("field.") === 0) changed(); });
  }

  window.addEventListener("beforeunload", function (ev) {
    if (!dirty() || submitting) return;
    save().catch(noop); // in case the reader stays
    ev.preventDefault();
    ev.returnValue = "";
  });

  // ---- submitting ----
  // We ask the form's data-confirm question ourselves (and always for Ctrl+Enter), so the
  // attribute comes off: app.js would otherwise ask again in its own submit listener.

  var confirmText = form ? form.getAttribute("data-confirm") : null;
  if (form && !readonly) {
    form.removeAttribute("data-confirm");
    form.addEventListener("submit", function (ev) { ev.preventDefault(); submitRead(false); });
  }

  // Required fields are checked here, before the confirmation: every missing one is named and
  // highlighted, and the first gets the focus.
  function missingFields() {
    var missing = [], seen = {};
    Array.prototype.forEach.call(form.querySelectorAll("[required]"), function (el) {
      if (el.checkValidity() || seen[el.name]) return;
      seen[el.name] = true;
      missing.push(el);
    });
    return missing;
  }

  function submitRead(fromKey) {
    if (submitting) return;
    var missing = missingFields(), note = document.getElementById("read-missing");
    form.classList.add("checked");
    if (missing.length) {
      if (note) {
        note.textContent = "Not submitted: fill in " + missing.map(function (el) { return el.getAttribute("data-label") || el.name; }).join(", ") + ".";
        note.hidden = false;
      }
      missing[0].focus();
      return;
    }
    if (note) note.hidden = true;
    var question = confirmText || (fromKey ? SUBMIT_CONFIRM : null);
    if (question && !window.confirm(question)) return;
    submitting = true;
    var button = document.getElementById("submit-read");
    if (button) button.disabled = true;
    (dirty() ? save() : Promise.resolve()).then(function () {
      // The native submit: no submit event, so neither this handler nor app.js's runs again.
      HTMLFormElement.prototype.submit.call(form);
    }, function () {
      submitting = false;
      if (button) button.disabled = false;
    });
  }

  // ---- for the browser tests ----
  window.evidentiaWorkbench = {
    regions: function () { return JSON.parse(JSON.stringify(records.map(function (r) { return r.data; }))); },
    count: function () { return records.length; },
    save: save,
    dirty: dirty,
    tool: function (name) { if (name) setTool(name); return tool; },
    drawMs: function () { return lastDrawMs; },
    view: function () { var c = viewer.viewport.getCenter(); return [viewer.viewport.getZoom(), c.x, c.y]; },
    layers: function () { return viewer.world.getItemCount(); }
  };
}

if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
