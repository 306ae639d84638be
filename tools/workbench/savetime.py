from common import *
d = browser()
d.set_script_timeout(60)
open_page(d, "" + (__import__("sys").argv[1] if len(__import__("sys").argv) > 1 else "?points=100000") + "")
print(d.execute_async_script("""var done = arguments[0];
evidentiaWorkbench.tool('point');
var c = document.querySelector('.openseadragon-canvas'), r = c.getBoundingClientRect(), out = [];
function press(type, x, y) { c.dispatchEvent(new PointerEvent(type, {bubbles: true, cancelable: true, clientX: r.left + x, clientY: r.top + y, pointerId: 1, button: 0, buttons: type === 'pointerup' ? 0 : 1, isPrimary: true, pointerType: 'mouse'})); }
function once(i) {
  press('pointerdown', 300 + i * 10, 300); press('pointerup', 300 + i * 10, 300);
  var t0 = performance.now(); var p = evidentiaWorkbench.save(); var sync = performance.now() - t0;
  p.then(function () { out.push({syncMs: +sync.toFixed(1), roundTripMs: Math.round(performance.now() - t0)}); if (i < 3) once(i + 1); else done(out); });
}
once(0);"""))
d.quit()
