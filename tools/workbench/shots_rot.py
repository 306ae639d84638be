from common import *
d = browser(1200, 900)
open_page(d, "?n=0")
for name, js in (("rot30", "evidentiaViewer.viewport.setRotation(30, true)"), ("flip", "evidentiaViewer.viewport.setRotation(0, true); evidentiaViewer.viewport.setFlip(true)")):
    d.execute_script(js)
    time.sleep(1.5)
    wait(lambda: d.execute_script("return evidentiaViewer.world.getItemAt(0).getFullyLoaded()"), 20)
    d.find_element("css selector", "#slide-viewer").screenshot("shot-%s.png" % name)
d.quit()
