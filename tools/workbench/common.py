import time
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
BASE = "http://127.0.0.1:8765"

def browser(width=1500, height=1000, extra=()):
    o = Options()
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=%d,%d" % (width, height), "--force-device-scale-factor=1"] + list(extra):
        o.add_argument(a)
    o.binary_location = "/usr/bin/chromium"
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    o.set_capability("unhandledPromptBehavior", "ignore")
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)

def wait(pred, timeout=15, step=0.03, msg="condition"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out waiting for " + msg)

def open_page(d, query="?n=0"):
    d.get(BASE + "/" + query)
    wait(lambda: d.execute_script("return document.getElementById('slide-viewer').getAttribute('data-ready')") == "1", 60, msg="data-ready")
    # tiles: wait until OSD has loaded everything it wants at this view
    wait(lambda: d.execute_script("return evidentiaViewer.world.getItemAt(0).getFullyLoaded()"), 30, msg="tiles")

# Measures redraws: zooms in steps (immediately, so each frame is one redraw) and reports the
# overlay draw time (JS + canvas commands) and the whole frame time incl. raster (a getImageData
# read-back forces the canvas to finish drawing).
PERF_JS = """
var done = arguments[arguments.length - 1];
var v = evidentiaViewer, vp = v.viewport, wb = evidentiaWorkbench;
var zoomTo = arguments[0], steps = arguments[1];
var overlay = document.querySelector('.wb-overlay'), c = overlay.getContext('2d');
vp.goHome(true);
var z0 = vp.getZoom(), factor = Math.pow(zoomTo, 1 / steps), draw = [], full = [], i = 0;
function raf() { return new Promise(function (r) { requestAnimationFrame(r); }); }
(async function () {
  await raf(); await raf();
  for (i = 0; i < steps; i++) {
    vp.zoomBy(i % 2 ? factor : factor * 1.0001, vp.getCenter(), true);
    await raf();
    var t0 = performance.now(); c.getImageData(0, 0, 1, 1); var flush = performance.now() - t0;
    draw.push(wb.drawMs()); full.push(wb.drawMs() + flush);
  }
  function stats(a) { var s = a.slice().sort(function (x, y) { return x - y; }); return { median: +s[Math.floor(s.length / 2)].toFixed(1), max: +s[s.length - 1].toFixed(1) }; }
  done({ zoom: +(vp.getZoom() / z0).toFixed(1), draw: stats(draw), withRaster: stats(full) });
})();
"""
