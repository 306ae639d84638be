"""Harness server for workbench.js: the page, /static from the repo, DZI tiles, a regions JSON
with special shapes plus N generated regions, and a draft endpoint that checks and records saves.
Run: /var/tmp/evpy/bin/python server.py [port]"""
import json, math, os, random, sys, threading, time, urllib.parse
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "static")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
STATE = {"posts": [], "submits": [], "fail": 0, "delay_ms": 0, "regions_status": 200}
LOCK = threading.Lock()
CACHE = {}
TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".jpg": "image/jpeg",
         ".dzi": "application/xml", ".html": "text/html; charset=utf-8", ".json": "application/json"}


def special_regions():
    ring = lambda x0, y0, x1, y1: [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return [
        {"id": "poly-hole", "class": {"name": "Tumor", "color": [200, 50, 50]},
         "geometry": {"Polygon": [ring(1000, 1000, 2000, 2000), ring(1300, 1300, 1700, 1700)]},
         "name": "with hole", "measurements": {"area_um2": 62500.0}},
        {"id": "multi", "class": {"name": "Stroma", "color": [44, 160, 44]},
         "geometry": {"MultiPolygon": [[ring(3000, 1000, 3800, 1800), ring(3200, 1200, 3600, 1600)],
                                       [ring(4200, 1000, 4800, 1600)]]}},
        {"class": {"name": "Necrosis", "color": [34, 34, 34]},
         "geometry": {"LineString": [[500, 4000], [1500, 4600], [2500, 4000], [3500, 5200]]}},
        {"class": {"name": "Lymphocyte", "color": [31, 119, 180]}, "object_type": "detection",
         "geometry": {"MultiPoint": [[5000 + 100 * i, 3000] for i in range(11)]}},
        {"geometry": {"Polygon": [ring(6000, 4000, 6500, 4500)]}, "extra_unknown": [1, 2, 3]},  # no class
    ]


def generated(n, points, seed=7):
    rnd = random.Random(seed)
    classes = [("Tumor", [200, 50, 50]), ("Lymphocyte", [31, 119, 180]), ("Stroma", [44, 160, 44]), ("Other", [148, 103, 189])]
    out = []
    for i in range(n):
        name, color = classes[i % 4]
        cx, cy = rnd.uniform(200, 7800), rnd.uniform(200, 5800)
        kind = i % 10
        if kind < 6:  # detections (cells)
            out.append({"class": {"name": name, "color": color}, "object_type": "detection", "geometry": {"Point": [round(cx, 1), round(cy, 1)]}})
        else:  # blobs of 12-40 vertices, 15-120 px
            k, r = rnd.randint(12, 40), rnd.uniform(15, 120)
            pts = [[round(cx + r * (0.7 + 0.3 * rnd.random()) * math.cos(2 * math.pi * j / k), 1),
                    round(cy + r * (0.7 + 0.3 * rnd.random()) * math.sin(2 * math.pi * j / k), 1)] for j in range(k)]
            out.append({"class": {"name": name, "color": color}, "geometry": {"Polygon": [pts + [pts[0]]]}})
    for i in range(points):
        name, color = classes[i % 2]
        out.append({"class": {"name": name, "color": color}, "object_type": "detection",
                    "geometry": {"Point": [round(rnd.uniform(0, 8000), 1), round(rnd.uniform(0, 6000), 1)]}})
    return out


def check_region(r):
    assert isinstance(r, dict) and "geometry" in r, r
    g = r["geometry"]
    assert len(g) == 1 and list(g)[0] in ("Point", "MultiPoint", "LineString", "Polygon", "MultiPolygon"), g
    if "Polygon" in g:
        for ring in g["Polygon"]:
            assert len(ring) >= 4 and ring[0] == ring[-1], ring
    if "class" in r:
        c = r["class"]
        assert isinstance(c["name"], str) and len(c["color"]) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c["color"]), c


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body, ctype="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.path == "/":
            page = open(os.path.join(HERE, "page.html")).read()
            rq = urllib.parse.urlencode({"n": q.get("n", "0"), "points": q.get("points", "0")})
            page = page.replace("{{QUERY}}", rq).replace("{{READONLY}}", q.get("readonly", "0"))
            page = page.replace("{{CONFIRM}}", 'data-confirm="Submit this read? It cannot be changed afterwards."' if q.get("confirm", "1") == "1" else "")
            return self.send(200, page, TYPES[".html"])
        if u.path == "/regions":
            if STATE["regions_status"] != 200:
                return self.send(STATE["regions_status"], {"error": "boom"})
            key = (int(q.get("n", 0)), int(q.get("points", 0)))
            if key not in CACHE:
                CACHE[key] = json.dumps({"regions": special_regions() + generated(*key)}).encode()
            return self.send(200, CACHE[key])
        if u.path == "/_state":
            with LOCK:
                return self.send(200, {"posts": STATE["posts"], "submits": STATE["submits"]})
        if u.path == "/_reset":
            with LOCK:
                STATE.update(posts=[], submits=[], fail=0, delay_ms=0, regions_status=200)
            return self.send(200, {})
        if u.path == "/_config":
            with LOCK:
                for k in ("fail", "delay_ms", "regions_status"):
                    if k in q:
                        STATE[k] = int(q[k])
            return self.send(200, {})
        if u.path in ("/next", "/prev", "/studies"):
            return self.send(200, "<!doctype html><title>%s</title><p>%s" % (u.path, u.path), TYPES[".html"])
        base, rel = (STATIC, u.path[len("/static/"):]) if u.path.startswith("/static/") else \
                    (os.path.join(HERE, "tiles"), u.path[len("/tiles/"):]) if u.path.startswith("/tiles/") else \
                    (HERE, "harness.js") if u.path == "/harness.js" else (None, None)
        if base:
            f = os.path.normpath(os.path.join(base, rel))
            if f.startswith(base) and os.path.isfile(f):
                return self.send(200, open(f, "rb").read(), TYPES.get(os.path.splitext(f)[1], "application/octet-stream"))
        self.send(404, "not found", "text/plain")

    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if u.path == "/draft":
            t_arrived = time.time()
            if STATE["delay_ms"]:
                time.sleep(STATE["delay_ms"] / 1000)
            if self.headers.get("X-CSRF-Token") != "test-csrf":
                return self.send(403, {"error": "CSRF token missing or wrong"})
            if self.headers.get("Content-Type") != "application/json":
                return self.send(415, {"error": "not JSON"})
            with LOCK:
                if STATE["fail"] > 0:
                    STATE["fail"] -= 1
                    return self.send(422, {"error": "the study is locked"})
            d = json.loads(body)
            assert set(d) == {"values", "regions"}, d.keys()
            assert all(isinstance(v, str) for v in d["values"].values()), d["values"]
            for r in d["regions"]:
                check_region(r)
            with LOCK:
                STATE["posts"].append({"t": t_arrived, "done": time.time(), "values": d["values"], "count": len(d["regions"]),
                                       "regions": d["regions"][-12:], "specials": d["regions"][:5], "bytes": len(body)})
            return self.send(200, {"saved_at": time.strftime("%Y-%m-%d %H:%M:%S"), "region_count": len(d["regions"])})
        if u.path == "/submit":
            with LOCK:
                STATE["submits"].append({"t": time.time(), "form": dict(urllib.parse.parse_qsl(body.decode()))})
            return self.send(200, "<!doctype html><title>Submitted</title><p id=done>Submitted", TYPES[".html"])
        self.send(404, "not found", "text/plain")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
