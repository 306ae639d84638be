#!/usr/bin/env python3
"""The OpenSlide baseline of benches/vendors.rs: openslide-python (OpenSlide 4 from openslide-bin)
reading the same file in the same run.

    bench_openslide.py SLIDE

Prints one JSON object: level 0 read through read_region in 2048-px regions (Mpx/s), and the
Deep Zoom tiles of the full-resolution level through openslide.deepzoom.DeepZoomGenerator
(254 px, 1 px overlap, JPEG quality 80 by PIL, as OpenSlide's example server serves them), on a
freshly opened slide (cold) and again (warm: OpenSlide's own tile cache), in tiles/s.
"""

import io
import json
import sys
import time

import openslide
from openslide.deepzoom import DeepZoomGenerator


def main(path):
    slide = openslide.OpenSlide(path)
    w, h = slide.dimensions
    t = time.perf_counter()
    for y in range(0, h, 2048):
        for x in range(0, w, 2048):
            slide.read_region((x, y), 0, (min(2048, w - x), min(2048, h - y))).convert("RGB")
    region = w * h / 1e6 / (time.perf_counter() - t)
    slide.close()

    slide = openslide.OpenSlide(path)
    dz = DeepZoomGenerator(slide, tile_size=254, overlap=1)
    level = dz.level_count - 1
    cols, rows = dz.level_tiles[level]
    rates = []
    for _ in range(2):
        t = time.perf_counter()
        for r in range(rows):
            for c in range(cols):
                buf = io.BytesIO()
                dz.get_tile(level, (c, r)).save(buf, "JPEG", quality=80)
        rates.append(cols * rows / (time.perf_counter() - t))
    print(json.dumps({"region_mpx_s": region, "dz_cold_tiles_s": rates[0], "dz_warm_tiles_s": rates[1],
                      "tiles": cols * rows, "openslide": openslide.__library_version__}))


if __name__ == "__main__":
    main(sys.argv[1])
