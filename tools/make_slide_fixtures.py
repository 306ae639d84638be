#!/usr/bin/env python3
"""Write the small whole-slide fixtures in tests/fixtures/slides/ and their OpenSlide reference.

Run with the dev venv (numpy, tifffile, imagecodecs, pillow, pyvips, openslide-python + openslide-bin):
    /var/tmp/evpy/bin/python tools/make_slide_fixtures.py

Deterministic: synthetic "tissue" comes from a seeded generator and the writers get fixed
parameters, so re-running gives the same pixels (byte-identical files for the same library
versions). The content has saturated reds, greens, blues and yellows next to H&E pinks and
purples, so a decoder that skips (or wrongly applies) the YCbCr->RGB transform is caught.

Files written:
  aperio.svs            Aperio-like SVS: JPEG level 0 with shared JPEGTables and RGB-encoded
                        tiles (Adobe transform 0, component ids 'R','G','B', like real Aperio),
                        stripped JPEG thumbnail as image 2, a downsample-4 level, LZW label
                        (NewSubfileType 1) with a fake name, JPEG macro (NewSubfileType 9), and
                        fake PHI in ImageDescription and DateTime/Artist/HostComputer/DocumentName.
  libvips-ycbcr.tiff    pyvips tiled pyramid, JPEG Q85, Photometric=YCbCr + JPEGTables, 0.25 mpp.
  tifffile-jfif.tiff    complete JFIF (YCbCr) tiles tagged Photometric=RGB, levels in the IFD chain.
  bigtiff-lzw.tiff      BigTIFF pyramid: LZW + horizontal predictor level 0, deflate level 1.
  ome-pyramid.ome.tiff  OME-TIFF, deflate, reduced levels as SubIFDs (reference from tifffile: OpenSlide
                        does not read SubIFD levels).
  plain.png, plain.jpg  small single images.
  truncated.svs, empty.tiff, not-a-slide.tiff, absurd-dimensions.tiff, jpeg2000.svs: bad inputs.
  reference.json        what OpenSlide (PIL for PNG/JPEG, tifffile for OME) reports for each good fixture: levels,
                        mpp, objective power, associated image names, and sample pixel values.
"""

import io
import json
import os
import struct
import sys

import numpy as np
import openslide
import tifffile
from PIL import Image, ImageDraw

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "slides")


def tissue(w, h, seed):
    """Soft coloured blobs on a near-white background, plus a hue sweep band."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = (243, 239, 246)
    palette = [(232, 150, 190), (125, 60, 150), (40, 45, 165), (40, 170, 80), (245, 210, 40), (205, 30, 40)]
    for k in range(60):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.03, 0.12) * min(w, h)
        col = np.array(palette[k % len(palette)], np.float32)
        m = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (r * r))[..., None] * 0.9
        img = img * (1 - m) + col * m
    # Hue sweep across the top eighth: every hue at full saturation.
    band = h // 8
    hue = xx[:band] / max(w - 1, 1) * 6.0
    c = np.stack([np.clip(np.abs(hue - 3) - 1, 0, 1), np.clip(2 - np.abs(hue - 2), 0, 1),
                  np.clip(2 - np.abs(hue - 4), 0, 1)], -1)
    img[:band] = c * 230 + 15
    # Fine texture so JPEG blocks are not flat.
    img += (np.sin(xx / 3.0) * np.cos(yy / 5.0) * 6)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def shrink(a, factor):
    h, w = a.shape[0] // factor, a.shape[1] // factor
    return np.asarray(Image.fromarray(a).resize((w, h), Image.BOX))


def segments(jpeg):
    """Split a JPEG stream into (marker, bytes) segments up to and including SOS + scan data."""
    assert jpeg[:2] == b"\xff\xd8"
    out, i = [], 2
    while i < len(jpeg):
        marker = jpeg[i + 1]
        if marker == 0xDA:  # SOS: the rest is the scan
            out.append((marker, jpeg[i:]))
            break
        n = struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        out.append((marker, jpeg[i:i + 2 + n]))
        i += 2 + n
    return out


def rgb_jpeg(tile, quality=80):
    """Baseline JPEG coded in RGB (no colour transform): Adobe APP14 transform 0, ids 'R','G','B'."""
    import imagecodecs
    return imagecodecs.jpeg8_encode(tile, level=quality, colorspace="RGB", outcolorspace="RGB")


def abbreviate(jpegs):
    """Move DQT/DHT of same-table JPEG streams into one JPEGTables stream, as libtiff/Aperio store them."""
    tables = None
    tiles = []
    for j in jpegs:
        segs = segments(j)
        t = b"".join(s for m, s in segs if m in (0xDB, 0xC4))
        if tables is None:
            tables = t
        assert t == tables, "tiles must share quantisation and Huffman tables"
        tiles.append(b"\xff\xd8" + b"".join(s for m, s in segs if m not in (0xDB, 0xC4)))
    return b"\xff\xd8" + tables + b"\xff\xd9", tiles


def tiles_of(a, th, tw):
    """Tiles in row-major order, edge tiles padded to full size (as TIFF requires)."""
    h, w = a.shape[:2]
    for y in range(0, h, th):
        for x in range(0, w, tw):
            t = np.zeros((th, tw, 3), np.uint8)
            part = a[y:y + th, x:x + tw]
            t[:part.shape[0], :part.shape[1]] = part
            yield t


def pil_jpeg(a, quality=85):
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def make_aperio(path):
    l0 = tissue(1200, 960, 1)
    l1 = shrink(l0, 4)
    thumb = shrink(l0, 8)  # 150 x 120
    desc = ("Aperio Image Library v12.0.5\r\n1200x960 [0,0 1200x960] (240x240) JPEG/RGB Q=80"
            "|AppMag = 20|MPP = 0.4990|Filename = DOE_JOHN_S12-3456|Date = 11/03/21|Time = 10:11:12"
            "|User = 1b2c3d4e-0000-1111-2222-333344445555|ScanScope ID = SS1234|Barcode = S12-3456")
    label = Image.new("RGB", (134, 100), (250, 250, 250))
    d = ImageDraw.Draw(label)
    d.text((6, 10), "DOE, JOHN", fill=(0, 0, 0))
    d.text((6, 30), "S12-3456", fill=(0, 0, 160))
    d.text((6, 50), "DOB 1950-01-01", fill=(0, 0, 0))
    d.rectangle((90, 70, 125, 92), fill=(200, 30, 40))
    label = np.asarray(label.resize((400, 300), Image.NEAREST))
    macro = np.concatenate([np.full((300, 200, 3), 250, np.uint8), shrink(tissue(1600, 1200, 5), 4)], 1)
    macro[20:120, 20:180] = label[::3, ::2][:100, :160]

    tables0, tiles0 = abbreviate([rgb_jpeg(t) for t in tiles_of(l0, 240, 240)])
    tables1, tiles1 = abbreviate([rgb_jpeg(t) for t in tiles_of(l1, 240, 240)])
    # outcolorspace RGB: tifffile would otherwise tag every JPEG image Photometric=YCbCr.
    common = dict(photometric="rgb", planarconfig="contig", software="ScanScope", metadata=None)
    rgbjpeg = dict(compression="jpeg", compressionargs={"outcolorspace": "RGB"}, subsampling=(1, 1))
    with tifffile.TiffWriter(path) as tw:
        tw.write(iter(tiles0), shape=l0.shape, dtype="uint8", tile=(240, 240), jpegtables=tables0,
                 description=desc, datetime="2021:11:03 10:11:12",
                 extratags=[(315, "s", 0, "Dr. Jane Roe", True),
                            (316, "s", 0, "SCANNER-PC-DOE", True), (269, "s", 0, "DOE_JOHN_S12-3456.svs", True)],
                 **rgbjpeg, **common)
        tw.write(iter([rgb_jpeg(thumb)]), shape=thumb.shape, dtype="uint8", rowsperstrip=thumb.shape[0],
                 description="Aperio Image Library v12.0.5\r\n1200x960 -> 150x120 - "
                 "|AppMag = 20|MPP = 0.4990", **rgbjpeg, **common)
        tw.write(iter(tiles1), shape=l1.shape, dtype="uint8", tile=(240, 240), jpegtables=tables1,
                 description="Aperio Image Library v12.0.5\r\n1200x960 [0,0 1200x960] (240x240) -> 300x240 "
                 "JPEG/RGB Q=80|AppMag = 20|MPP = 0.4990",
                 **rgbjpeg, **common)
        tw.write(label, rowsperstrip=32, compression="lzw", subfiletype=1,
                 description="Aperio Image Library v12.0.5\nlabel 400x300", **common)
        tw.write(iter([rgb_jpeg(macro)]), shape=macro.shape, dtype="uint8", rowsperstrip=macro.shape[0],
                 subfiletype=9, description="Aperio Image Library v12.0.5\nmacro 600x300",
                 **rgbjpeg, **common)


def make_libvips(path):
    a = tissue(1024, 768, 2)
    import pyvips  # here, so tools/make_vendor_fixtures.py can import this module without libvips

    im = pyvips.Image.new_from_memory(a.tobytes(), a.shape[1], a.shape[0], 3, "uchar")
    # xres/yres are pixels per millimetre: 0.25 um/px = 4000 px/mm.
    im.tiffsave(path, tile=True, tile_width=256, tile_height=256, pyramid=True, compression="jpeg", Q=85,
                xres=4000.0, yres=4000.0, resunit="cm", strip=True)


def make_tifffile_jfif(path):
    a = tissue(1024, 768, 3)
    levels = [a, shrink(a, 2), shrink(a, 4)]
    with tifffile.TiffWriter(path) as tw:
        for i, lv in enumerate(levels):
            # PIL writes complete JFIF streams (YCbCr 4:2:0) while the TIFF says RGB: the trap.
            tw.write(iter([pil_jpeg(t) for t in tiles_of(lv, 256, 256)]), shape=lv.shape, dtype="uint8",
                     tile=(256, 256), compression="jpeg", photometric="rgb", subsampling=(1, 1),
                     compressionargs={"outcolorspace": "RGB"}, subfiletype=1 if i else 0,
                     resolution=(20000.0 / 2**i, 20000.0 / 2**i), resolutionunit="CENTIMETER",
                     metadata=None, software="tifffile")


def make_bigtiff(path):
    a = tissue(512, 384, 4)
    l1 = shrink(a, 2)
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(a, tile=(128, 128), compression="lzw", predictor=True, photometric="rgb", metadata=None,
                 resolution=(25400.0, 25400.0), resolutionunit="INCH", software="tifffile")
        tw.write(l1, tile=(128, 128), compression="adobe_deflate", photometric="rgb", subfiletype=1,
                 metadata=None, resolution=(12700.0, 12700.0), resolutionunit="INCH")


def make_ome(path):
    a = tissue(256, 192, 7)
    levels = [a, shrink(a, 2), shrink(a, 4)]
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(a, subifds=2, tile=(64, 64), compression="zlib", photometric="rgb",
                 resolution=(20000.0, 20000.0), resolutionunit="CENTIMETER",
                 metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
                           "UUID": "urn:uuid:00000000-0000-4000-8000-000000000001"})  # fixed: deterministic
        for lv in levels[1:]:
            tw.write(lv, subfiletype=1, tile=(64, 64), compression="zlib", photometric="rgb")


def reference_tifffile(path):
    """OpenSlide reads OME-TIFF SubIFD levels as nothing but level 0, so use tifffile's decode."""
    with tifffile.TiffFile(path) as t:
        arrays = [lv.asarray() for lv in t.series[0].levels]
    h0, w0 = arrays[0].shape[:2]
    levels = []
    for a in arrays:
        h, w = a.shape[:2]
        ds = (w0 / w + h0 / h) / 2
        samples = [[int(round(x * ds)), int(round(y * ds)), [int(v) for v in a[y, x]]] for x, y in sample_points(w, h)]
        levels.append({"width": w, "height": h, "downsample": ds, "samples": samples})
    return {"vendor": None, "levels": levels, "mpp_x": 0.5, "mpp_y": 0.5, "objective_power": None,
            "associated": [], "associated_sizes": {}}


def make_plain(png_path, jpg_path):
    a = tissue(300, 200, 6)
    Image.fromarray(a).save(png_path, optimize=False)
    Image.fromarray(a).save(jpg_path, quality=90)


def make_bad(out, aperio_path):
    data = open(aperio_path, "rb").read()
    open(os.path.join(out, "truncated.svs"), "wb").write(data[: len(data) // 2])
    open(os.path.join(out, "empty.tiff"), "wb").close()
    open(os.path.join(out, "not-a-slide.tiff"), "wb").write(
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
    # Classic TIFF whose single directory claims 4,000,000 x 4,000,000 pixels in 256 x 256 tiles:
    # 244,140,625 tile offsets and byte counts that the (tiny) file cannot possibly hold.
    w = h = 4_000_000
    ntiles = ((w + 255) // 256) * ((h + 255) // 256)
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2), (277, 3, 1, 3),
               (322, 3, 1, 256), (323, 3, 1, 256), (324, 4, ntiles, 8), (325, 4, ntiles, 8)]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", value, 0) if typ == 3 else
                                                      struct.pack("<I", value))
    ifd += struct.pack("<I", 0)
    open(os.path.join(out, "absurd-dimensions.tiff"), "wb").write(b"II*\x00" + struct.pack("<I", 8) + ifd)
    # Aperio SVS whose tiles claim JPEG 2000 (33003), as from older Aperio scanners; payload is junk.
    with tifffile.TiffWriter(os.path.join(out, "jpeg2000.svs")) as tw:
        tw.write(iter([bytes([0xFF, 0x4F, 0xFF, 0x51]) + bytes(60)] * 4), shape=(480, 480, 3), dtype="uint8",
                 tile=(240, 240), compression=33003, photometric="rgb", metadata=None,
                 description="Aperio Image Library v10.0.50\r\n480x480 [0,0 480x480] (240x240) J2K/YUV16 Q=70"
                 "|AppMag = 20|MPP = 0.5")


def sample_points(w, h):
    """Level-coordinate sample points: corners, tile seams and a grid inside the image."""
    pts = {(0, 0), (w - 1, h - 1), (w - 1, 0), (0, h - 1), (w // 2, h // 2)}
    for fx in (0.1, 0.3, 0.55, 0.8, 0.95):
        for fy in (0.05, 0.2, 0.5, 0.9):
            pts.add((int(w * fx), int(h * fy)))
    for s in (239, 240, 255, 256):
        if s < w and s < h:
            pts.add((s, s))
    return sorted(pts)


def reference_openslide(path):
    s = openslide.OpenSlide(path)
    p = s.properties
    mpp_x = p.get(openslide.PROPERTY_NAME_MPP_X)
    mpp_y = p.get(openslide.PROPERTY_NAME_MPP_Y)
    obj = p.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)
    levels = []
    for lv in range(s.level_count):
        w, h = s.level_dimensions[lv]
        ds = s.level_downsamples[lv]
        samples = []
        for x, y in sample_points(w, h):
            # read_region takes level-0 coordinates; sample points are chosen in level pixels.
            px = s.read_region((int(round(x * ds)), int(round(y * ds))), lv, (1, 1)).convert("RGB").getpixel((0, 0))
            samples.append([int(round(x * ds)), int(round(y * ds)), list(px)])
        levels.append({"width": w, "height": h, "downsample": ds, "samples": samples})
    return {
        "vendor": p.get(openslide.PROPERTY_NAME_VENDOR),
        "levels": levels,
        "mpp_x": float(mpp_x) if mpp_x else None,
        "mpp_y": float(mpp_y) if mpp_y else None,
        "objective_power": float(obj) if obj else None,
        "associated": sorted(s.associated_images.keys()),
        "associated_sizes": {k: list(v.size) for k, v in s.associated_images.items()},
        "associated_samples": {k: [[x, y, list(v.convert("RGB").getpixel((x, y)))] for x, y in sample_points(*v.size)]
                               for k, v in s.associated_images.items()},
    }


def jfif_true_colours(path, ref):
    """Replaces OpenSlide's pixel samples of a file whose JFIF tiles are tagged Photometric=RGB:
    OpenSlide (libtiff) shows their raw Y/Cb/Cr values as R/G/B; the reference is what the JPEG
    streams encode, decoded by PIL (libjpeg), which is what Evidentia shows. OpenSlide's values
    are kept under "openslide_samples" to document the difference."""
    with tifffile.TiffFile(path) as t:
        pages = [p for p in t.pages]
        fh = t.filehandle
        for lv, level in enumerate(ref["levels"]):
            page = pages[lv]
            tw, th = page.tilewidth, page.tilelength
            across = (page.imagewidth + tw - 1) // tw
            level["openslide_samples"] = level["samples"]
            new = []
            for x0, y0, _ in level["samples"]:
                ds = level["downsample"]
                x, y = int(round(x0 / ds)), int(round(y0 / ds))
                i = (y // th) * across + x // tw
                fh.seek(page.dataoffsets[i])
                tile = Image.open(io.BytesIO(fh.read(page.databytecounts[i]))).convert("RGB")
                new.append([x0, y0, list(tile.getpixel((x % tw, y % th)))])
            level["samples"] = new
    ref["pixels_from"] = "PIL decode of each JFIF tile (OpenSlide shows raw YCbCr here)"
    return ref


def reference_pil(path):
    im = Image.open(path).convert("RGB")
    w, h = im.size
    samples = [[x, y, list(im.getpixel((x, y)))] for x, y in sample_points(w, h)]
    return {"vendor": None, "levels": [{"width": w, "height": h, "downsample": 1.0, "samples": samples}],
            "mpp_x": None, "mpp_y": None, "objective_power": None, "associated": [], "associated_sizes": {}}


def main():
    os.makedirs(OUT, exist_ok=True)
    j = lambda n: os.path.join(OUT, n)
    make_aperio(j("aperio.svs"))
    make_libvips(j("libvips-ycbcr.tiff"))
    make_tifffile_jfif(j("tifffile-jfif.tiff"))
    make_bigtiff(j("bigtiff-lzw.tiff"))
    make_ome(j("ome-pyramid.ome.tiff"))
    make_plain(j("plain.png"), j("plain.jpg"))
    make_bad(OUT, j("aperio.svs"))
    ref = {
        "_generated_by": "tools/make_slide_fixtures.py with openslide " + openslide.__library_version__,
    }
    for name in ("aperio.svs", "libvips-ycbcr.tiff", "tifffile-jfif.tiff", "bigtiff-lzw.tiff"):
        ref[name] = reference_openslide(j(name))
    ref["tifffile-jfif.tiff"] = jfif_true_colours(j("tifffile-jfif.tiff"), ref["tifffile-jfif.tiff"])
    ref["ome-pyramid.ome.tiff"] = reference_tifffile(j("ome-pyramid.ome.tiff"))
    for name in ("plain.png", "plain.jpg"):
        ref[name] = reference_pil(j(name))
    with open(j("reference.json"), "w") as f:
        json.dump(ref, f, indent=1, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(j(n)) for n in os.listdir(OUT))
    print(f"wrote {OUT}: {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
