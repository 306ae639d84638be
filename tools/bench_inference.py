#!/usr/bin/env python3
"""The Python reference of the inference benchmark (`cargo bench --bench inference` runs it).

The straightforward way to run an ONNX model over a slide in Python: for each batch, decode the
level-0 JPEG tiles under each model tile with tifffile (libjpeg-turbo through imagecodecs),
downsample 2x2 -> 1 by the rounded mean (what Evidentia's pipeline does for a model at twice
the slide's microns per pixel), normalise as the model card says, and run the batch through an
onnxruntime InferenceSession with the same batch size and intra-op threads as Evidentia.

Input: the JSON the Rust bench writes (slide path, tile origins in level-0 px, tile size on the
slide and for the model, card normalisation, model path, batch size, threads). Output: one JSON
line with the tile count and seconds end to end, decoding only and model only.

    /var/tmp/evpy/bin/python tools/bench_inference.py target/bench-data/inference-tiles.json
(needs numpy, tifffile, imagecodecs, onnxruntime)
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort
import tifffile


class Level0:
    """Level 0 of a tiled TIFF: decodes the JPEG tiles covering a region."""

    def __init__(self, path):
        self.tif = tifffile.TiffFile(path)
        self.page = self.tif.pages[0]
        self.tw, self.th = self.page.tilewidth, self.page.tilelength
        self.height, self.width = self.page.shape[:2]
        self.across = (self.width + self.tw - 1) // self.tw
        self.fh = self.tif.filehandle

    def tile(self, ix, iy):
        idx = iy * self.across + ix
        self.fh.seek(self.page.dataoffsets[idx])
        data = self.fh.read(self.page.databytecounts[idx])
        seg, _, _ = self.page.decode(data, idx, jpegtables=self.page.jpegtables)
        return seg[0]

    def region(self, x, y, size):
        """size x size RGB pixels from (x, y), white beyond the slide."""
        out = np.full((size, size, 3), 255, np.uint8)
        for iy in range(y // self.th, min((y + size - 1) // self.th, (self.height - 1) // self.th) + 1):
            for ix in range(x // self.tw, min((x + size - 1) // self.tw, (self.width - 1) // self.tw) + 1):
                t = self.tile(ix, iy)
                tx, ty = ix * self.tw, iy * self.th
                x0, y0 = max(x, tx), max(y, ty)
                x1 = min(x + size, tx + self.tw, self.width)
                y1 = min(y + size, ty + self.th, self.height)
                out[y0 - y:y1 - y, x0 - x:x1 - x] = t[y0 - ty:y1 - ty, x0 - tx:x1 - tx]
        return out


def model_tile(level0, origin, tile_l0, tile_size):
    """The region under a model tile, box-downsampled by the integer factor f (strided sums are
    several times faster in numpy than summing a reshaped array over two axes)."""
    region = level0.region(origin[0], origin[1], tile_l0).astype(np.uint16)
    f = tile_l0 // tile_size
    s = np.zeros((tile_size, tile_size, 3), np.uint16)
    for dy in range(f):
        for dx in range(f):
            s += region[dy::f, dx::f]
    n = f * f
    return ((s + n // 2) // n).astype(np.uint8)


def normalise(tiles, norm):
    x = np.stack(tiles).astype(np.float32) * np.float32(norm["scale"])
    x = (x - np.array(norm["mean"], np.float32)) / np.array(norm["std"], np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def main():
    spec = json.load(open(sys.argv[1]))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = spec["threads"]
    opts.inter_op_num_threads = 1
    # The best setting found for the reference too: threads that sleep instead of spinning
    # between runs leave the core to the decoding (measured: 296 -> 366-390 tiles/s overlapped).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    session = ort.InferenceSession(spec["model"], opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    level0 = Level0(spec["slide"])
    origins, batch = spec["origins"], spec["batch"]
    tile_l0, tile_size, norm = spec["tile_l0"], spec["tile_size"], spec["normalisation"]
    # Warm-up (session allocation), not timed, as on the Rust side.
    session.run(None, {name: normalise([model_tile(level0, origins[0], tile_l0, tile_size)], norm)})

    decode = infer = 0.0
    batches = []
    t_all = time.perf_counter()
    for i in range(0, len(origins), batch):
        t0 = time.perf_counter()
        x = normalise([model_tile(level0, o, tile_l0, tile_size) for o in origins[i:i + batch]], norm)
        t1 = time.perf_counter()
        session.run(None, {name: x})
        t2 = time.perf_counter()
        decode += t1 - t0
        infer += t2 - t1
        batches.append(x)
    end_to_end = time.perf_counter() - t_all
    # Model only: the same pre-decoded batches through the same session.
    t0 = time.perf_counter()
    for x in batches:
        session.run(None, {name: x})
    model_only = time.perf_counter() - t0
    print(json.dumps({
        "tiles": len(origins), "seconds": end_to_end, "decode_seconds": decode,
        "infer_seconds": infer, "model_only_seconds": model_only, "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()
