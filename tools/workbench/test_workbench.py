"""Browser test of static/js/workbench.js against the harness server (server.py on :8765).
Run: /var/tmp/evpy/bin/python test_workbench.py   (prints one line per check; exits 1 on failure)"""
import json, re, sys, time, urllib.request
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select
from common import BASE, browser, open_page, wait

OSD_CSP = "openseadragon.min.js"  # OSD's own injected <style>, see report


def server(path):
    return json.loads(urllib.request.urlopen(BASE + path).read() or b"{}")


def posts():
    return server("/_state")["posts"]


def submits():
    return server("/_state")["submits"]


d = browser()
d.set_script_timeout(30)
WB = "return evidentiaWorkbench."


def js(script, *args):
    return d.execute_script(script, *args)


def canvas():
    return d.find_element(By.CSS_SELECTOR, ".openseadragon-canvas")


def at(x, y):
    """ActionChains positioned at viewer-element coordinates (x, y)."""
    c = canvas()
    r = c.rect
    return ActionChains(d).move_to_element_with_offset(c, int(x - r["width"] / 2), int(y - r["height"] / 2))


def click(x, y):
    at(x, y).click().perform()


def keys(*ks):
    ActionChains(d).send_keys(*ks).perform()


def ctrl(k):
    ActionChains(d).key_down(Keys.CONTROL).send_keys(k).key_up(Keys.CONTROL).perform()


def last_presses(n):
    return js("return window.presses.slice(-%d)" % n)


def close(a, b, tol=0.02):
    return abs(a[0] - b[0]) <= tol and abs(a[1] - b[1]) <= tol


def count():
    return js(WB + "count()")


def status():
    return js("return document.getElementById('save-status').textContent")


def settle_saved(expect_count=None, timeout=8):
    wait(lambda: not js(WB + "dirty()") and status().startswith("Saved"), timeout, msg="save (status %r)" % status())
    if expect_count is not None:
        assert posts()[-1]["count"] == expect_count, (posts()[-1]["count"], expect_count)


def reset():
    server("/_reset")


failures = []


def check(name, fn):
    try:
        fn()
        print("ok   ", name)
    except Exception as e:  # noqa: BLE001 — report and continue
        failures.append(name)
        print("FAIL ", name, "—", repr(e)[:400])


# ---------------------------------------------------------------------------------------------

reset()
specials = json.loads(urllib.request.urlopen(BASE + "/regions?n=0").read())["regions"]
open_page(d, "?n=0")


def t_initial():
    assert count() == 5, count()
    assert js("return document.getElementById('region-count').textContent") == "5 regions"
    assert js(WB + "tool()") == "pan"
    pan = d.find_element(By.CSS_SELECTOR, '[data-tool="pan"]')
    assert pan.get_attribute("aria-pressed") == "true" and "active" in pan.get_attribute("class")
    tumor = d.find_element(By.CSS_SELECTOR, '[data-class="Tumor"]')
    assert tumor.get_attribute("aria-pressed") == "true"
    assert js("return document.getElementById('read-form').hasAttribute('data-confirm')") is False
    csp = [v for v in js("return window.cspViolations") if OSD_CSP not in v]
    assert not csp, csp
    assert not js("return window.jsErrors"), js("return window.jsErrors")
    assert js("return getComputedStyle(document.querySelector('.wb-overlay')).pointerEvents") == "none"


check("initial state: 5 regions, pan tool, class 1, no CSP violation of ours", t_initial)


def t_select_point_and_hole():
    # a point on top of the hole polygon, and a click in the hole
    js("var item = evidentiaViewer.world.getItemAt(0); evidentiaViewer.viewport.fitBounds(item.imageToViewportRectangle(900, 900, 1200, 1200), true);")
    time.sleep(0.5)
    before = js(WB + "regions()")
    keys("s")
    sx, sy = js("var p = evidentiaViewer.world.getItemAt(0).imageToViewerElementCoordinates(new OpenSeadragon.Point(1500, 1500)); return [p.x, p.y]")
    click(sx, sy)  # inside the hole: nothing of the holed polygon
    keys(Keys.DELETE)
    assert js(WB + "regions()") == before, "clicking a hole must not select the polygon around it"
    ex, ey = js("var p = evidentiaViewer.world.getItemAt(0).imageToViewerElementCoordinates(new OpenSeadragon.Point(1150, 1150)); return [p.x, p.y]")
    keys("o")
    click(ex, ey)  # a point inside the ring
    keys("s")
    click(ex + 4, ey + 3)  # 5px away: picks the point (smallest), not the polygon
    keys(Keys.DELETE)
    assert js(WB + "regions()") == before, "the point should be the one deleted"
    click(ex + 40, ey)  # in the ring, no point: the polygon
    keys(Keys.DELETE)
    after = js(WB + "regions()")
    assert len(after) == len(before) - 1 and after == [r for r in before if r.get("id") != "poly-hole"]
    ctrl("z")
    assert js(WB + "regions()") == before
    keys(Keys.ESCAPE)
    js("evidentiaViewer.viewport.goHome(true)")
    time.sleep(0.3)


check("select: holes are outside, the smallest region under the cursor wins, within 6px of a point", t_select_point_and_hole)




def t_keys_g_not_app_prefix():
    d.find_element(By.TAG_NAME, "h1").click()
    keys("g")
    assert js(WB + "tool()") == "polygon"
    keys("s")  # app.js would go to /studies after "g s"
    time.sleep(0.3)
    assert d.current_url.startswith(BASE + "/?"), d.current_url
    assert js(WB + "tool()") == "select"
    poly = d.find_element(By.CSS_SELECTOR, '[data-tool="polygon"]')
    assert poly.get_attribute("aria-pressed") == "false"


check("g picks the polygon tool and does not start app.js's 'g s'", t_keys_g_not_app_prefix)


def t_polygon_enter():
    keys("g")
    for x, y in ((200, 150), (400, 150), (420, 350), (220, 330)):
        click(x, y)
    d.save_screenshot("shot-drawing-polygon.png")
    keys(Keys.ENTER)
    assert count() == 6, count()
    r = js(WB + "regions()")[-1]
    ring = r["geometry"]["Polygon"][0]
    assert len(r["geometry"]["Polygon"]) == 1 and len(ring) == 5 and ring[0] == ring[-1], ring
    exp = [(p["ix"], p["iy"]) for p in last_presses(4)]
    for got, want in zip(ring[:4], exp):
        assert close(got, want), (got, want)
    assert r["class"] == {"name": "Tumor", "color": [200, 50, 50]}, r
    assert "object_type" not in r and "id" not in r


check("polygon: 4 clicks + Enter → Polygon in image coordinates, class Tumor", t_polygon_enter)


def t_point():
    keys("2", "o")
    assert js(WB + "tool()") == "point"
    lym = d.find_element(By.CSS_SELECTOR, '[data-class="Lymphocyte"]')
    assert lym.get_attribute("aria-pressed") == "true" and "active" in lym.get_attribute("class")
    click(500, 200)
    assert count() == 7
    r = js(WB + "regions()")[-1]
    p = last_presses(1)[0]
    assert close(r["geometry"]["Point"], (p["ix"], p["iy"])), (r, p)
    assert r["class"] == {"name": "Lymphocyte", "color": [31, 119, 180]}


check("point: key 2 + o, click → Point, class Lymphocyte", t_point)


def t_rectangle():
    keys("r")
    at(700, 380).click_and_hold().move_by_offset(-50, -40).move_by_offset(-50, -40).release().perform()
    assert count() == 8, count()
    r = js(WB + "regions()")[-1]
    ring = r["geometry"]["Polygon"][0]
    p = last_presses(1)[0]
    x0, y0 = js("var p = evidentiaViewer.world.getItemAt(0).viewerElementToImageCoordinates(new OpenSeadragon.Point(arguments[0], arguments[1])); return [p.x, p.y]",
                p["x"] - 100, p["y"] - 80)
    x1, y1 = p["ix"], p["iy"]
    want = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    assert len(ring) == 5 and all(close(a, b, 0.05) for a, b in zip(ring, want)), (ring, want)


check("rectangle: drag (bottom-right to top-left) → closed 5-vertex Polygon clockwise from top-left", t_rectangle)


def t_select_delete_undo():
    before = js(WB + "regions()")
    keys("s")
    click(650, 340)
    keys(Keys.DELETE)
    assert count() == 7, count()
    after = js(WB + "regions()")
    assert after == before[:-1], "the rectangle should be the deleted one"
    ctrl("z")
    assert js(WB + "regions()") == before


check("select + Delete removes the rectangle; Ctrl+Z brings it back", t_select_delete_undo)


def t_autosave():
    settle_saved(8)
    p = posts()[-1]
    regions = js(WB + "regions()")
    assert p["regions"][-3:] == regions[-3:]
    assert p["specials"] == specials, "loaded regions must round-trip unchanged (ids, names, unknown fields)"
    assert re.fullmatch(r"Saved \d\d:\d\d:\d\d", status()), status()
    assert js("return document.getElementById('workbench').getAttribute('data-saved')") == "8"
    ps = posts()
    for a, b in zip(ps, ps[1:]):
        assert b["t"] >= a["done"] - 0.01, "two saves in flight"


check("autosave: POST with CSRF header, regions as drawn, loaded ones unchanged, status Saved", t_autosave)


def t_form_values():
    n = len(posts())
    Select(d.find_element(By.NAME, "field.grade")).select_by_visible_text("G2")
    d.find_element(By.NAME, "field.tils").send_keys("35")
    d.find_element(By.CSS_SELECTOR, 'input[name="field.necrosis"][value="yes"]').click()
    ta = d.find_element(By.NAME, "field.comment")
    ta.send_keys("gros 1 h")
    assert js(WB + "tool()") == "select", "typing in the textarea must not switch tools"
    assert status() == "Unsaved changes", status()
    assert js(WB + "dirty()")
    settle_saved()
    assert len(posts()) > n
    assert posts()[-1]["values"] == {"grade": "G2", "tils": "35", "necrosis": "yes", "comment": "gros 1 h"}, posts()[-1]["values"]


check("form fields: values saved by name without 'field.', typing in fields leaves tools alone", t_form_values)


def t_ctrl_s():
    d.find_element(By.NAME, "field.comment").send_keys("!")
    t0 = time.time()
    ctrl("s")  # while focus is in the textarea: saving from a field is allowed
    wait(lambda: posts()[-1]["values"]["comment"].endswith("!"), 3, msg="Ctrl+S save")
    took = posts()[-1]["t"] - t0
    assert took < 1.0, "Ctrl+S should save at once, took %.2fs" % took
    settle_saved()


check("Ctrl+S saves immediately (no debounce)", t_ctrl_s)


def t_failure_and_retry():
    server("/_config?fail=1")
    d.find_element(By.TAG_NAME, "h1").click()
    keys("o")
    click(300, 450)
    wait(lambda: status().startswith("Not saved"), 6, msg="failure status")
    assert status() == "Not saved: the study is locked", status()
    assert js(WB + "dirty()")
    n = count()
    click(320, 450)
    settle_saved(n + 1)


check("failed save: 'Not saved: <error>', stays dirty, next change retries", t_failure_and_retry)


def t_queue():
    server("/_config?delay_ms=1500")
    n0 = len(posts())
    click(340, 450)
    ctrl("s")
    wait(lambda: status() == "Saving…", 3, msg="Saving…")
    click(360, 450)
    ctrl("s")
    ctrl("s")
    settle_saved(count(), 10)
    server("/_config?delay_ms=0")
    ps = posts()[n0:]
    assert len(ps) == 2, [p["count"] for p in ps]
    assert ps[1]["t"] >= ps[0]["done"] - 0.01, "second save started before the first finished"


check("a save during a save waits (one queued, never two in flight)", t_queue)


def t_polygon_dblclick_close_escape_backspace():
    keys("g")
    n = count()
    click(150, 420)
    click(250, 420)
    at(200, 500).double_click().perform()
    assert count() == n + 1, "double-click closes"
    ring = js(WB + "regions()")[-1]["geometry"]["Polygon"][0]
    assert len(ring) == 4, ring
    # clicking the first vertex closes
    click(150, 520); click(250, 520); click(200, 580); click(152, 521)
    assert count() == n + 2
    assert len(js(WB + "regions()")[-1]["geometry"]["Polygon"][0]) == 4
    # Escape cancels
    click(450, 420); click(550, 420)
    keys(Keys.ESCAPE)
    keys(Keys.ENTER)
    assert count() == n + 2
    # Backspace drops the last vertex
    click(450, 420); click(550, 420); click(600, 500)
    keys(Keys.BACKSPACE)
    click(500, 520)
    keys(Keys.ENTER)
    ring = js(WB + "regions()")[-1]["geometry"]["Polygon"][0]
    pr = last_presses(4)
    want = [(pr[0]["ix"], pr[0]["iy"]), (pr[1]["ix"], pr[1]["iy"]), (pr[3]["ix"], pr[3]["iy"])]
    assert len(ring) == 4 and all(close(a, b) for a, b in zip(ring, want)), (ring, want)


check("polygon: double-click closes, click on first vertex closes, Escape cancels, Backspace drops vertex", t_polygon_dblclick_close_escape_backspace)


def center():
    return js("var c = evidentiaViewer.viewport.getCenter(true); return [c.x, c.y]")


def t_pan_while_drawing():
    keys("r")
    n = count()
    c0 = center()
    ActionChains(d).key_down(Keys.SPACE).perform()
    at(500, 300).click_and_hold().move_by_offset(40, 20).move_by_offset(40, 20).release().perform()
    ActionChains(d).key_up(Keys.SPACE).perform()
    time.sleep(0.3)
    assert count() == n, "space+drag must not draw"
    assert center() != c0, "space+drag pans"
    keys("o")
    c1 = center()
    at(500, 300).click_and_hold().move_by_offset(30, 0).move_by_offset(30, 0).release().perform()
    time.sleep(0.3)
    assert count() == n and center() != c1, "a drag with the point tool pans"
    z0 = js("return evidentiaViewer.viewport.getZoom(true)")
    ActionChains(d).scroll_from_origin(ScrollOrigin.from_element(canvas()), 0, -300).perform()
    time.sleep(1.5)
    assert js("return evidentiaViewer.viewport.getZoom(true)") > z0 * 1.05, "wheel zooms while drawing"
    js("evidentiaViewer.viewport.goHome(true)")
    time.sleep(0.3)


check("space+drag pans with the rectangle tool; drag pans with the point tool; wheel zooms", t_pan_while_drawing)


def t_hide():
    keys("h")
    assert js("return document.getElementById('region-count').textContent").endswith("(hidden)")
    d.save_screenshot("shot-hidden.png")
    keys("h")
    assert not js("return document.getElementById('region-count').textContent").endswith("(hidden)")


check("h hides and shows the regions", t_hide)


def t_beforeunload():
    settle_saved()
    assert not js("var e = new Event('beforeunload', {cancelable: true}); window.dispatchEvent(e); return e.defaultPrevented")
    server("/_config?fail=1")
    d.find_element(By.NAME, "field.comment").send_keys("?")
    wait(lambda: status().startswith("Not saved"), 6, msg="failure")
    assert js("var e = new Event('beforeunload', {cancelable: true}); window.dispatchEvent(e); return e.defaultPrevented")
    settle_saved()  # the beforeunload handler saved again


check("beforeunload warns only with unsaved changes", t_beforeunload)

d.save_screenshot("shot-after-edits.png")


def alert_text_and(action):
    a = wait(lambda: _alert(), 5, msg="confirm dialog")
    text = a.text
    getattr(a, action)()
    return text


def _alert():
    try:
        return d.switch_to.alert
    except Exception:  # noqa: BLE001
        return None


def t_ctrl_enter_dismiss():
    n = len(submits())
    ActionChains(d).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
    text = alert_text_and("dismiss")
    ActionChains(d).key_up(Keys.CONTROL).perform()  # the dialog swallowed the key-up
    assert text.startswith("Submit this read?"), text
    time.sleep(0.5)
    assert _alert() is None
    assert len(submits()) == n and d.title.startswith("Workbench")


check("Ctrl+Enter asks first; Cancel keeps the page", t_ctrl_enter_dismiss)


def t_submit_failed_save():
    server("/_config?fail=1")
    d.find_element(By.NAME, "field.comment").send_keys(" x")
    d.find_element(By.ID, "submit-read").click()
    alert_text_and("accept")
    wait(lambda: status().startswith("Not saved"), 5, msg="failed save")
    time.sleep(0.5)
    assert not submits() and d.title.startswith("Workbench")
    assert d.find_element(By.ID, "submit-read").is_enabled()


check("submit: a failed save stops the submit", t_submit_failed_save)


def t_submit_invalid():
    tils = d.find_element(By.NAME, "field.tils")
    js("arguments[0].value = '350'", tils)
    ActionChains(d).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
    time.sleep(0.5)
    assert _alert() is None, "an invalid form is not submitted (no question asked)"
    assert not submits()
    js("arguments[0].value = '35'", tils)


check("submit: the browser's form validation runs first", t_submit_invalid)


def t_submit():
    keys("o")
    click(400, 300)
    assert js(WB + "dirty()")
    n = count()
    d.find_element(By.ID, "submit-read").click()
    text = alert_text_and("accept")
    assert text == "Submit this read? It cannot be changed afterwards.", text
    wait(lambda: d.title == "Submitted", 8, msg="submitted page (one dialog only)")
    s = submits()[-1]
    p = posts()[-1]
    assert p["count"] == n and p["t"] < s["t"], "saved before the submit"
    assert s["form"]["csrf_token"] == "test-csrf", s
    assert {k[6:]: v for k, v in s["form"].items() if k.startswith("field.")} == p["values"], (s, p["values"])


check("submit: one confirm (data-confirm), unsaved changes saved first, then native submit", t_submit)


def t_readonly():
    reset()
    open_page(d, "?n=0&readonly=1")
    disabled = js("return Array.prototype.map.call(document.querySelectorAll('.wb-tools button, .region-class'), function (b) { return b.getAttribute('data-tool') + ':' + b.disabled; })")
    assert disabled[0] == "pan:false" and all(x.endswith("true") for x in disabled[1:]), disabled
    d.find_element(By.TAG_NAME, "h1").click()
    keys("o")
    click(300, 300)
    assert js(WB + "tool()") == "pan" and count() == 5, (js(WB + "tool()"), count())
    time.sleep(2)
    assert not posts(), "no autosave when read-only"
    keys("h")
    assert js("return document.getElementById('region-count').textContent").endswith("(hidden)"), js("return document.getElementById('region-count').textContent")
    keys("g", "s")  # not taken in read-only mode: app.js's "g s" goes to the studies
    wait(lambda: d.current_url.endswith("/studies"), 3, msg="g s → /studies")


check("read-only: pan only, no autosave, h works, app.js keeps 'g s'", t_readonly)


def t_load_failure():
    server("/_config?regions_status=500")
    d.get(BASE + "/?n=0")
    wait(lambda: status().startswith("Regions could not be loaded"), 10, msg="load error")
    assert js("return document.querySelector('[data-tool=\"polygon\"]').disabled")
    keys("g")
    assert js(WB + "tool()") == "pan"
    server("/_reset")


check("regions failing to load: error shown, editing off (a save would erase them)", t_load_failure)


def t_next_key():
    open_page(d, "?n=0")
    d.find_element(By.TAG_NAME, "h1").click()
    keys("n")
    wait(lambda: d.current_url.endswith("/next"), 3, msg="n → /next")


check("n still goes to the next slide (app.js data-key link)", t_next_key)

d.quit()
print("\n%d failed" % len(failures) if failures else "\nall passed")
sys.exit(1 if failures else 0)
