#!/usr/bin/env python3
"""Checks synthetic slides (crates/evidentia-wsi/src/synth.rs) with independent readers: tifffile and OpenSlide.

Usage: evidentia synth slides --out DIR --n 4 --phenotype mixed --size 6000x4500
       /var/tmp/evpy/bin/python tools/check_synth_with_openslide.py DIR/*.svs [--png-dir DIR]

For each slide: OpenSlide must detect the `aperio` vendor, report the MPP, the level sizes and
downsamples 1, 4, 16, ..., and the thumbnail/label/macro associated images; tifffile must read the
tiles; a tissue region must have H&E-like colours (pink/purple, not white, not YCbCr-as-RGB green)
and OpenSlide and tifffile must agree on its pixels (up to JPEG decoder rounding). With --png-dir,
writes a region, the label and the macro as PNGs to look at.
"""
import json
import sys
from pathlib import Path

import numpy as np
import openslide
import tifffile


def check(path: Path, png_dir):
    truth = json.loads(path.with_suffix(".truth.json").read_text())
    slide = openslide.OpenSlide(str(path))
    vendor = slide.properties.get(openslide.PROPERTY_NAME_VENDOR)
    assert vendor == "aperio", f"vendor {vendor!r}"
    mpp = float(slide.properties[openslide.PROPERTY_NAME_MPP_X])
    assert abs(mpp - truth["mpp"]) < 1e-9, mpp
    dims = [list(d) for d in slide.level_dimensions]
    assert dims == truth["levels"], (dims, truth["levels"])
    for k, ds in enumerate(slide.level_downsamples):
        assert abs(ds - 4**k) / 4**k < 0.01, (k, ds)
    assoc = sorted(slide.associated_images)
    assert assoc == ["label", "macro", "thumbnail"], assoc

    # A tissue region: the centre of the first grid cell with the most epithelium.
    cell = max(truth["cells"], key=lambda c: c["epithelium_mm2"])
    size = int(truth["grid_cell_px"])
    x = int(cell["col"] * size + size / 2 - 256)
    y = int(cell["row"] * size + size / 2 - 256)
    x, y = max(0, min(x, truth["width"] - 512)), max(0, min(y, truth["height"] - 512))
    region = np.asarray(slide.read_region((x, y), 0, (512, 512)).convert("RGB")).astype(float)
    mean = region.reshape(-1, 3).mean(axis=0)
    assert mean[1] < 215 and mean[0] > mean[1] and mean[2] > mean[1], f"not H&E-like: mean {mean}"

    with tifffile.TiffFile(str(path)) as tf:
        page = tf.pages[0]
        assert page.is_tiled and page.compression == 7, (page.is_tiled, page.compression)
        assert int(page.photometric) == 6, page.photometric
        level0 = page.asarray()
        assert level0.shape == (truth["height"], truth["width"], 3), level0.shape
        ours = level0[y : y + 512, x : x + 512].astype(float)
        diff = np.abs(ours - region).mean()
        assert diff < 3.0, f"tifffile and OpenSlide disagree: mean abs diff {diff}"
        descs = [p.description.split("\n")[1].split(" ")[0] if "\n" in p.description else "" for p in tf.pages]
        assert descs[-2:] == ["label", "macro"], descs
        assert tf.pages[0].tags["Artist"].value == truth["fake_patient_name"]

    print(f"{path.name}: aperio, {len(dims)} levels {dims}, mpp {mpp}, region mean RGB "
          f"{mean.round(1).tolist()}, phenotype {truth['phenotype']}, OK")
    if png_dir:
        out = Path(png_dir)
        out.mkdir(parents=True, exist_ok=True)
        slide.read_region((x, y), 0, (512, 512)).save(out / f"{path.stem}-region.png")
        for name in ("label", "macro", "thumbnail"):
            slide.associated_images[name].save(out / f"{path.stem}-{name}.png")


def main(argv):
    png_dir = None
    if "--png-dir" in argv:
        i = argv.index("--png-dir")
        png_dir = argv[i + 1]
        del argv[i : i + 2]
    if not argv:
        print(__doc__)
        return 2
    for p in argv:
        check(Path(p), png_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
