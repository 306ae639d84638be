#!/usr/bin/env python3
"""Screenshot of a page of a running Evidentia, signed in as a demo user, through chromedriver's
W3C WebDriver API (no Python packages needed). Used for docs/img/study.png:

    cargo run --release -- demo &        # or any served demo data dir
    python3 tools/screenshot.py http://127.0.0.1:8080 /studies/LUNG-IO-01 docs/img/study.png
"""
import base64
import json
import subprocess
import sys
import time
import urllib.request

base, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
user = sys.argv[4] if len(sys.argv) > 4 else "manager"
port = 9515
driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL)


def call(method, url, body=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{url}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)["value"]


try:
    for _ in range(50):
        try:
            call("GET", "/status")
            break
        except OSError:
            time.sleep(0.1)
    args = ["--headless=new", "--no-sandbox", "--window-size=1400,900", "--hide-scrollbars"]
    caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}}
    sid = call("POST", "/session", caps)["sessionId"]
    s = f"/session/{sid}"

    def find(css):
        el = call("POST", f"{s}/element", {"using": "css selector", "value": css})
        return next(iter(el.values()))

    call("POST", f"{s}/url", {"url": base + "/login"})
    call("POST", f"{s}/element/{find('input[name=username]')}/value", {"text": user})
    call("POST", f"{s}/element/{find('input[name=password]')}/value", {"text": "evidentia-demo"})
    call("POST", f"{s}/element/{find('#login-form button')}/click", {})
    time.sleep(1)
    call("POST", f"{s}/url", {"url": base + path})
    time.sleep(1.5)
    png = base64.b64decode(call("GET", f"{s}/screenshot"))
    with open(out, "wb") as f:
        f.write(png)
    call("DELETE", s)
    print(f"wrote {out} ({len(png)} bytes)")
finally:
    driver.terminate()
