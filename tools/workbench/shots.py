import os, json, sys
from common import *
d = browser()
open_page(d, "?n=5000")
d.save_screenshot("shot-home-5000.png")
# zoom to the special shapes: polygon with hole (1000-2000), multipolygon (3000-4800, 1000-1800)
d.execute_script("""var item = evidentiaViewer.world.getItemAt(0);
  evidentiaViewer.viewport.fitBounds(item.imageToViewportRectangle(800, 800, 4200, 1400), true);""")
wait(lambda: d.execute_script("return evidentiaViewer.world.getItemAt(0).getFullyLoaded()"), 20)
time.sleep(0.5)
d.save_screenshot("shot-special.png")
open_page(d, "?points=100000")
d.save_screenshot("shot-home-100k.png")
d.execute_script("""var item = evidentiaViewer.world.getItemAt(0);
  evidentiaViewer.viewport.fitBounds(item.imageToViewportRectangle(4000, 2500, 1200, 700), true);""")
wait(lambda: d.execute_script("return evidentiaViewer.world.getItemAt(0).getFullyLoaded()"), 20)
time.sleep(0.5)
d.save_screenshot("shot-100k-zoomed.png")
d.quit()
