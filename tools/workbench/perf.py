import sys, json
from common import *
q = sys.argv[1] if len(sys.argv) > 1 else "?n=5000"
import os
d = browser(extra=os.environ.get("CHROME_FLAGS", "").split())
d.set_script_timeout(120)
try:
    t0 = time.time()
    open_page(d, q)
    print(q, "ready at %.0f ms after navigation start" % d.execute_script("return window.readyAt"))
    for zoom, steps in ((1.05, 10), (4, 20), (16, 20), (64, 20)):
        d.execute_script("evidentiaViewer.viewport.goHome(true)")
        print(json.dumps(d.execute_async_script(PERF_JS, zoom, steps)))
finally:
    d.quit()
