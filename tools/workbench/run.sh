#!/bin/sh
# Re-runs the workbench browser checks: starts the harness server, runs the functional test,
# the redraw/load/save measurements and the screenshots, then stops the server it started.
set -e
cd "$(dirname "$0")"
PY=${PYTHON:-python3}   # needs selenium, pyvips (tools/requirements: pip install selenium pyvips)
[ -f tiles/slide.dzi ] || $PY make_dzi.py
$PY server.py 8765 > server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER' EXIT
sleep 1
# generate the big region sets once, so timings measure the browser, not this server
for q in "n=0" "n=5000" "points=100000" "n=5000&points=100000"; do curl -s "http://127.0.0.1:8765/regions?$q" > /dev/null; done
$PY test_workbench.py
for q in "?n=5000" "?points=100000" "?n=5000&points=100000"; do $PY perf.py "$q"; done
$PY loadtime.py "?n=0" "?n=5000" "?points=100000"
$PY savetime.py "?n=5000"; $PY savetime.py "?points=100000"
$PY shots.py; $PY shots_dpr2.py; $PY shots_rot.py
echo "screenshots: $(pwd)/shot-*.png"
