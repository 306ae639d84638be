from common import *
d = browser(1200, 900, extra=["--force-device-scale-factor=2"])
open_page(d, "?n=5000")
d.execute_script("""var item = evidentiaViewer.world.getItemAt(0);
  evidentiaViewer.viewport.fitBounds(item.imageToViewportRectangle(900, 900, 1400, 1000), true);""")
wait(lambda: d.execute_script("return evidentiaViewer.world.getItemAt(0).getFullyLoaded()"), 20)
time.sleep(0.5)
print(d.execute_script("var c = document.querySelector('.wb-overlay'); return [devicePixelRatio, c.width, c.height, c.clientWidth, c.clientHeight]"))
el = d.find_element("css selector", "#slide-viewer")
el.screenshot("shot-dpr2.png")
d.quit()
