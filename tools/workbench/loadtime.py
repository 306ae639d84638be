import os, json, sys
from common import *
d = browser(extra=os.environ.get("CHROME_FLAGS", "").split())
for q in sys.argv[1:]:
    open_page(d, q)
    print(q, d.execute_script("""var r = performance.getEntriesByType('resource').filter(function(e){return e.name.indexOf('/regions')>=0})[0];
      var o = performance.getEntriesByType('resource').filter(function(e){return e.name.indexOf('slide.dzi')>=0})[0];
      return {regionsRequestStart: Math.round(r.requestStart), regionsResponseStart: Math.round(r.responseStart), regionsResponseEnd: Math.round(r.responseEnd), bytes: r.encodedBodySize, dziEnd: Math.round(o.responseEnd), domContentLoaded: Math.round(performance.timing.domContentLoadedEventEnd - performance.timing.navigationStart), readyAt: Math.round(window.readyAt)}"""))
d.quit()
