#!/usr/bin/env python3
"""Write small slides in the scanner vendors' own formats to tests/fixtures/slides/vendors/, each
with planted PHI in every place that format keeps it, and what OpenSlide 4 reads from them.

`--ndpi PATH WIDTH HEIGHT` writes only a larger NDPI (for benches/vendors.rs).

Run with the dev venv (numpy, pillow, tifffile, openslide-python + openslide-bin,
wsidicomizer[openslide]==0.26.1 (which needs Debian's libturbojpeg0), pydicom):
    /var/tmp/evpy/bin/python tools/make_vendor_fixtures.py

No vendor publishes a writer and OpenSlide's own test slides are real scans we cannot fetch, so
the files are written here byte by byte after the formats' public descriptions: OpenSlide's
format notes (openslide.org/formats/<vendor>/) and its readers (src/openslide-vendor-*.c, v4.0.1),
which are the oracle: every file must open in OpenSlide 4 with the expected levels, resolution
and associated images, or this script fails.

Files written (1024 x 768 level 0, three levels, 0.25 um/px):
  sample.ndpi    Hamamatsu NDPI: the NDPI TIFF layout (64-bit first-directory offset, high halves
                 of every offset after each directory), one whole-level JPEG per level (4:4:4, so
                 OpenSlide's per-restart-interval decode equals a whole-image decode) with restart
                 markers and McuStarts (tag 65426), SourceLens 65421 (-1 = macro), focal plane 65424;
                 PHI: Reference 65427, serial 65442, key=value pairs 65449, barcode 65468,
                 DateTime, and a macro image with a printed name.
  philips.tiff   Philips TIFF export (BigTIFF): DPUfsImport XML in the first ImageDescription with
                 barcode (base64), serial number, acquisition date/time, source file name and
                 base64 label and macro JPEGs; tiled JPEG levels; Label and Macro strip images.
  leica.scn      Leica SCN (BigTIFF): SCN XML with collection name, barcode (base64), creation
                 dates and device serials; a macro image (two IFDs) and the main image (three IFDs).
  ventana.bif    Roche/Ventana BIF (BigTIFF): iScan XMLPacket (tag 700) with barcode, slide
                 annotation, unit number, scan date and operator on the Label_Image directory, a
                 Thumbnail, and levels 'level=N mag=M' with an EncodeInfo stitching XML.
  mirax.mrxs     3DHISTECH MIRAX: an empty .mrxs file and mirax/ with Slidedat.ini (slide name,
                 barcode, creation date, project), Index.dat and Data0000.dat holding the
                 tile JPEGs and the label, macro and preview images.
  dicom/         DICOM WSI (VL Whole Slide Microscopy Image, JPEG baseline, TILED_FULL) made from
                 philips.tiff by an independent converter (wsidicomizer), with the patient, study,
                 accession, referring physician and container id planted through its metadata
                 file, and a device serial number (kept under Retain Device Identity): three
                 VOLUME instances, a LABEL and an OVERVIEW.
  dicom-sparse/  the same series with level 0 rewritten (pydicom) as TILED_SPARSE with one tile
                 missing, its frames positioned by the Per-Frame Functional Groups.
  reference.json what OpenSlide reports for each: vendor, levels, mpp, objective power, associated
                 images, pixel samples composited over white, and the planted PHI strings.

Deterministic: the content comes from make_slide_fixtures.tissue (seeded) and Pillow's encoder
with fixed parameters.
"""

import base64
import io
import json
import os
import struct
import sys

import numpy as np
import openslide
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_slide_fixtures import sample_points, tissue  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "slides", "vendors")

# Planted PHI: none of these may appear anywhere in a data dir, an export or a command's output.
NAME = "DOE^JANE"
NAME_FILE = "Jane_Doe_1961"
ACCESSION = "S24-012345"
SERIAL = "SN-987654"
OPERATOR = "Operator-Kim"
DATE_ISO = "2024-06-15"
DATE_DICOM = "20240615"
DATE_TIFF = "2024:06:15"
MRN = "MRN-778899"
# A DICOM scanner's serial number is the device's identity, kept under PS3.15's Retain Device
# Identity Option (which ingest applies): not planted PHI, so that the scans can tell.
DICOM_DEVICE_SERIAL = "UFS-DEVICE-4711"
PLANTED = [NAME, NAME_FILE, ACCESSION, SERIAL, OPERATOR, OPERATOR.replace("-", "^"), MRN, DATE_ISO, DATE_DICOM, DATE_TIFF,
           base64.b64encode(ACCESSION.encode()).decode().rstrip("=")]

W, H = 1024, 768
MPP = 0.25

# ---------------------------------------------------------------------------------------------
# A TIFF writer small enough to follow the layouts exactly (tifffile cannot write NDPI's).

BYTE, ASCII, SHORT, LONG, RATIONAL, UNDEF, SLONG, FLOAT, LONG8 = 1, 2, 3, 4, 5, 7, 9, 11, 16
FMT = {SHORT: "H", LONG: "I", SLONG: "i", FLOAT: "f", LONG8: "Q"}


def encode(typ, vals):
    if isinstance(vals, (bytes, bytearray)):
        return bytes(vals), len(vals)
    if isinstance(vals, str):
        b = vals.encode() + b"\0"
        return b, len(b)
    if not isinstance(vals, (list, tuple)):
        vals = [vals]
    if typ == RATIONAL:
        return b"".join(struct.pack("<II", *v) for v in vals), len(vals)
    return b"".join(struct.pack("<" + FMT[typ], v) for v in vals), len(vals)


def write_tiff(path, ifds, mode):
    """`ifds`: dicts with `tags` [(tag, type, value)] and `strips` or `tiles` [bytes].
    `mode`: 'classic', 'bigtiff' or 'ndpi' (classic entries, 64-bit directory offsets, and the
    high 32 bits of every entry's offset in an array after the directory)."""
    big, ndpi = mode == "bigtiff", mode == "ndpi"
    buf = bytearray()
    if big:
        buf += b"II" + struct.pack("<HHHQ", 43, 8, 0, 0)
        next_ptr, ptr_size = 8, 8
    elif ndpi:
        buf += b"II" + struct.pack("<HQ", 42, 0)
        next_ptr, ptr_size = 4, 8
    else:
        buf += b"II" + struct.pack("<HI", 42, 0)
        next_ptr, ptr_size = 4, 4
    for ifd in ifds:
        tags = list(ifd["tags"])
        blobs = ifd.get("strips") or ifd.get("tiles")
        offsets, counts = [], []
        for b in blobs:
            if len(buf) % 2:
                buf += b"\0"
            offsets.append(len(buf))
            counts.append(len(b))
            buf += b
        otype = LONG8 if big else LONG
        first, second = (273, 279) if "strips" in ifd else (324, 325)
        tags += [(first, otype, offsets), (second, otype, counts)]
        tags.sort(key=lambda t: t[0])
        if len(buf) % 2:
            buf += b"\0"
        ifd_pos = len(buf)
        struct.pack_into("<Q" if ptr_size == 8 else "<I", buf, next_ptr, ifd_pos)
        inline, entry = (8, 20) if big else (4, 12)
        head = (8 if big else 2) + len(tags) * entry
        out_of_line = ifd_pos + head + ptr_size + (4 * len(tags) if ndpi else 0)
        entries, ool, highs = bytearray(), bytearray(), []
        for tag, typ, vals in tags:
            data, count = encode(typ, vals)
            high = b"\0\0\0\0"
            if len(data) <= inline and not (ndpi and typ == ASCII):
                val = data.ljust(inline, b"\0")
            else:
                if (out_of_line + len(ool)) % 2:
                    ool += b"\0"
                val = struct.pack("<Q" if big or ndpi else "<I", out_of_line + len(ool))
                ool += data
                if ndpi:
                    val, high = val[:4], val[4:8]
            highs.append(high)
            entries += struct.pack("<HHQ" if big else "<HHI", tag, typ, count) + val
        buf += struct.pack("<Q" if big else "<H", len(tags)) + entries
        next_ptr = len(buf)
        buf += b"\0" * ptr_size
        if ndpi:
            buf += b"".join(highs)
        assert len(buf) == out_of_line
        buf += ool
    with open(path, "wb") as f:
        f.write(buf)


# ---------------------------------------------------------------------------------------------
# Pixels

def levels(n=3):
    out = [tissue(W, H, 24)]
    for _ in range(1, n):
        im = Image.fromarray(out[-1])
        out.append(np.asarray(im.resize((im.width // 2, im.height // 2), Image.BILINEAR)))
    return out


def label_image(w, h, background):
    """A slide label as a scanner photographs it: the patient's name and accession number."""
    im = Image.new("RGB", (w, h), background)
    d = ImageDraw.Draw(im)
    d.text((10, 20), NAME, fill=(0, 0, 0))
    d.text((10, 60), ACCESSION, fill=(0, 0, 0))
    return im


def jpeg(image, quality=90, **kw):
    im = image if isinstance(image, Image.Image) else Image.fromarray(image)
    b = io.BytesIO()
    im.save(b, "JPEG", quality=quality, **kw)
    return b.getvalue()


def tiles(a, tw=256, th=256):
    h, w = a.shape[:2]
    out = []
    for y in range(0, h, th):
        for x in range(0, w, tw):
            t = np.full((th, tw, 3), 255, np.uint8)
            part = a[y:y + th, x:x + tw]
            t[:part.shape[0], :part.shape[1]] = part
            out.append(jpeg(t))
    return out


def tiled_ifd(a, extra=(), subfile=0, tw=256, th=256):
    h, w = a.shape[:2]
    tags = [(254, LONG, subfile), (256, LONG, w), (257, LONG, h), (258, SHORT, [8, 8, 8]), (259, SHORT, 7),
            (262, SHORT, 6), (277, SHORT, 3), (284, SHORT, 1), (322, LONG, tw), (323, LONG, th),
            (530, SHORT, [2, 2])] + list(extra)
    return dict(tags=tags, tiles=tiles(a, tw, th))


def stripped_ifd(image, extra=(), subfile=0):
    tags = [(254, LONG, subfile), (256, LONG, image.width), (257, LONG, image.height), (258, SHORT, [8, 8, 8]),
            (259, SHORT, 7), (262, SHORT, 6), (277, SHORT, 3), (278, LONG, image.height), (284, SHORT, 1),
            (530, SHORT, [2, 2])] + list(extra)
    return dict(tags=tags, strips=[jpeg(image)])


def px_per_cm(mpp):
    return [(int(round(10000 / mpp)), 1)]


# ---------------------------------------------------------------------------------------------
# Hamamatsu NDPI (openslide-vendor-hamamatsu.c: hamamatsu_ndpi_open)

def ndpi_level_jpeg(a):
    """A whole-level baseline JPEG with restart markers, so OpenSlide reads it in tiles of one
    restart interval (tile = MCU width x interval, MCU height); and each interval's first entropy
    byte relative to the JPEG's start (NDPI's McuStarts). 4:4:4: MCUs of 8 x 8."""
    h, w = a.shape[:2]
    mcus_per_row = w // 8
    interval = mcus_per_row // 4
    data = jpeg(a, restart_marker_blocks=interval, subsampling=0)
    sos = data.index(b"\xff\xda")
    starts = [sos + 2 + struct.unpack(">H", data[sos + 2:sos + 4])[0]]
    i = starts[0]
    while (j := data.find(b"\xff", i)) >= 0 and j + 1 < len(data):
        if 0xD0 <= data[j + 1] <= 0xD7:
            starts.append(j + 2)
        i = j + 2
    n_tiles = (mcus_per_row // interval) * (h // 8)
    assert len(starts) >= n_tiles, (len(starts), n_tiles)
    return data, starts[:n_tiles]


def make_ndpi(path):
    common = [(271, ASCII, "Hamamatsu"), (272, ASCII, "C13220"), (305, ASCII, "NDP.scan 3.4.0"),
              (306, ASCII, f"{DATE_TIFF} 10:30:00"), (296, SHORT, 3)]
    ifds = []
    for k, a in enumerate(levels()):
        data, starts = ndpi_level_jpeg(a)
        ifds.append(dict(strips=[data], tags=common + [
            (256, LONG, a.shape[1]), (257, LONG, a.shape[0]), (258, SHORT, [8, 8, 8]), (259, SHORT, 7),
            (262, SHORT, 6), (277, SHORT, 3), (278, LONG, a.shape[0]),
            (282, RATIONAL, px_per_cm(MPP * 2 ** k)), (283, RATIONAL, px_per_cm(MPP * 2 ** k)),
            (65420, LONG, 1), (65421, FLOAT, 40.0 / 2 ** k), (65422, SLONG, 1234), (65423, SLONG, -567),
            (65424, SLONG, 0), (65426, LONG, starts), (65427, ASCII, f"{ACCESSION} {NAME}"),
            (65442, ASCII, SERIAL),
            (65449, ASCII, f"Barcode={ACCESSION}\r\nOperator={OPERATOR}\r\nCreated={DATE_ISO}\r\n"),
            (65468, ASCII, ACCESSION)]))
    macro = label_image(640, 240, (230, 220, 210))
    ifds.append(dict(strips=[jpeg(macro)], tags=common + [
        (256, LONG, macro.width), (257, LONG, macro.height), (258, SHORT, [8, 8, 8]), (259, SHORT, 7),
        (262, SHORT, 6), (277, SHORT, 3), (278, LONG, macro.height), (282, RATIONAL, [(4000, 1)]),
        (283, RATIONAL, [(4000, 1)]), (65420, LONG, 1), (65421, FLOAT, -1.0), (65424, SLONG, 0)]))
    write_tiff(path, ifds, "ndpi")


# ---------------------------------------------------------------------------------------------
# Philips TIFF (openslide-vendor-philips-tiff.c)

def make_philips(path):
    pyramid = levels()

    def attr(name, value, pmsvr="IString"):
        return f'<Attribute Name="{name}" Group="0x0000" Element="0x0000" PMSVR="{pmsvr}">{value}</Attribute>'

    def spacing(mm):
        return f"&quot;{mm:.8g}&quot; &quot;{mm:.8g}&quot;"

    representations = "".join(
        '<DataObject ObjectType="PixelDataRepresentation">'
        + attr("DICOM_PIXEL_SPACING", spacing(MPP / 1000 * 2 ** k), "IDoubleArray")
        + attr("PIIM_PIXEL_DATA_REPRESENTATION_NUMBER", k, "IUInt32") + "</DataObject>"
        for k in range(len(pyramid)))
    label = base64.b64encode(jpeg(label_image(300, 200, (255, 255, 255)))).decode()
    macro = base64.b64encode(jpeg(label_image(600, 200, (200, 200, 230)))).decode()
    xml = ('<?xml version="1.0" encoding="UTF-8" ?>\n<DataObject ObjectType="DPUfsImport">'
           + attr("DICOM_MANUFACTURER", "PHILIPS")
           + attr("DICOM_DEVICE_SERIAL_NUMBER", SERIAL)
           + attr("DICOM_ACQUISITION_DATETIME", f"{DATE_DICOM}103000.000000")
           + attr("DICOM_OPERATORS_NAME", OPERATOR)
           + attr("PIM_DP_UFS_BARCODE", base64.b64encode(ACCESSION.encode()).decode())
           + '<Attribute Name="PIM_DP_SCANNED_IMAGES" Group="0x301D" Element="0x1003" PMSVR="IDataObjectArray"><Array>'
           + '<DataObject ObjectType="DPScannedImage">' + attr("PIM_DP_IMAGE_TYPE", "WSI")
           + attr("DICOM_PIXEL_SPACING", spacing(MPP / 1000), "IDoubleArray")
           + attr("DICOM_DERIVATION_DESCRIPTION",
                  f"tiff-useBigTIFF=1-useRgb=0-levels=10003,10002,10000,10001-processing=0-q80-"
                  f"sourceFilename=&quot;{NAME_FILE}.isyntax&quot;")
           + '<Attribute Name="PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE" Group="0x1001" Element="0x8B01" '
             'PMSVR="IDataObjectArray"><Array>' + representations + "</Array></Attribute></DataObject>"
           + '<DataObject ObjectType="DPScannedImage">' + attr("PIM_DP_IMAGE_TYPE", "LABELIMAGE")
           + attr("PIM_DP_IMAGE_DATA", label) + "</DataObject>"
           + '<DataObject ObjectType="DPScannedImage">' + attr("PIM_DP_IMAGE_TYPE", "MACROIMAGE")
           + attr("PIM_DP_IMAGE_DATA", macro) + "</DataObject>"
           + "</Array></Attribute></DataObject>")
    software = (305, ASCII, "Philips DP v1.0")
    ifds = [tiled_ifd(a, [software, (306, ASCII, f"{DATE_TIFF} 10:30:00")] + ([(270, ASCII, xml)] if k == 0 else []),
                      subfile=0 if k == 0 else 1)
            for k, a in enumerate(pyramid)]
    ifds.append(stripped_ifd(label_image(300, 200, (255, 255, 255)), [(270, ASCII, "Label"), software], subfile=1))
    ifds.append(stripped_ifd(label_image(600, 200, (200, 200, 230)), [(270, ASCII, "Macro"), software], subfile=1))
    write_tiff(path, ifds, "bigtiff")


# ---------------------------------------------------------------------------------------------
# Leica SCN (openslide-vendor-leica.c)

def make_leica(path):
    pyramid = levels()
    macro = np.asarray(label_image(512, 384, (220, 210, 200)))
    macro_half = np.asarray(Image.fromarray(macro).resize((256, 192)))
    nm = int(MPP * 1000)
    # The collection (the whole glass in nm) is larger than the scanned area, which is offset in it.
    cw, ch = (W + 256) * nm, (H + 192) * nm
    device = f'<device model="Leica SCN400;Leica SCN" version="1.5.1.10804 {SERIAL};1.5.1.10864"/>'
    settings = ("<scanSettings><objectiveSettings><objective>{}</objective></objectiveSettings>"
                "<illuminationSettings><numericalAperture>0.5</numericalAperture>"
                "<illuminationSource>brightfield</illuminationSource></illuminationSettings></scanSettings>")
    dims = "".join(f'<dimension sizeX="{a.shape[1]}" sizeY="{a.shape[0]}" ifd="{2 + k}"/>'
                   for k, a in enumerate(pyramid))
    xml = (f'<?xml version="1.0" encoding="utf-8"?>\n<scn xmlns="http://www.leica-microsystems.com/scn/2010/10/01">'
           f'<collection name="{NAME}" uuid="11111111-2222-3333-4444-555555555555" sizeX="{cw}" sizeY="{ch}">'
           f'<barcode>{base64.b64encode(ACCESSION.encode()).decode()}</barcode>'
           f'<image name="{NAME_FILE} macro" uuid="a"><creationDate>{DATE_ISO}T10:30:00.00Z</creationDate>{device}'
           '<pixels sizeX="512" sizeY="384"><dimension sizeX="512" sizeY="384" ifd="0"/>'
           '<dimension sizeX="256" sizeY="192" ifd="1"/></pixels>'
           f'<view sizeX="{cw}" sizeY="{ch}" offsetX="0" offsetY="0" spacingZ="0"/>{settings.format(5)}</image>'
           f'<image name="{OPERATOR}" uuid="b"><creationDate>{DATE_ISO}T10:31:00.00Z</creationDate>{device}'
           f'<pixels sizeX="{W}" sizeY="{H}">{dims}</pixels>'
           f'<view sizeX="{W * nm}" sizeY="{H * nm}" offsetX="{128 * nm}" offsetY="{96 * nm}" spacingZ="0"/>'
           f'{settings.format(40)}</image></collection></scn>')
    macro_res = px_per_cm(cw / 512 / 1000)
    ifds = [tiled_ifd(macro, [(270, ASCII, xml), (296, SHORT, 3), (282, RATIONAL, macro_res),
                              (283, RATIONAL, macro_res), (306, ASCII, f"{DATE_TIFF} 10:30:00")]),
            tiled_ifd(macro_half, [(296, SHORT, 3)])]
    for k, a in enumerate(pyramid):
        res = px_per_cm(MPP * 2 ** k)
        ifds.append(tiled_ifd(a, [(296, SHORT, 3), (282, RATIONAL, res), (283, RATIONAL, res)]))
    write_tiff(path, ifds, "bigtiff")


# ---------------------------------------------------------------------------------------------
# Roche / Ventana BIF (openslide-vendor-ventana.c)

def make_ventana(path):
    pyramid = levels()
    iscan = (f'<?xml version="1.0" encoding="utf-8"?><Metadata><iScan ScannerModel="VENTANA DP 200" '
             f'UnitNumber="{SERIAL}" ScanDate="{DATE_ISO}" UserName="{OPERATOR}" BuildVersion="1.1.0.15854" '
             f'Magnification="40" ScanRes="{MPP}" Z-layers="1" BarCode1="{ACCESSION}" SlideAnnotation="{NAME}" '
             'ShowLabel="1" LabelBoundary="0" /></Metadata>')
    tw = th = 256
    cols, rows = W // tw, H // th

    def tile_number(c, r):  # serpentine, 1-based, from the bottom row
        rb = rows - 1 - r
        return rb * cols + (c if rb % 2 == 0 else cols - 1 - c) + 1

    joints = []
    for r in range(rows):
        for c in range(cols):
            if c + 1 < cols:
                joints.append(f'<TileJointInfo FlagJoined="1" Confidence="100" Direction="RIGHT" '
                              f'Tile1="{tile_number(c, r)}" Tile2="{tile_number(c + 1, r)}" OverlapX="0" OverlapY="0"/>')
            if r > 0:
                joints.append(f'<TileJointInfo FlagJoined="1" Confidence="100" Direction="UP" '
                              f'Tile1="{tile_number(c, r)}" Tile2="{tile_number(c, r - 1)}" OverlapX="0" OverlapY="0"/>')
    encode_info = (f'<?xml version="1.0" encoding="utf-8"?><EncodeInfo Ver="2"><SlideInfo><AoiInfo XIMAGESIZE="{tw}" '
                   f'YIMAGESIZE="{th}" NumRows="{rows}" NumCols="{cols}" Pos-X="0" Pos-Y="0"/></SlideInfo>'
                   f'<SlideStitchInfo><ImageInfo AOIScanned="1" AOIIndex="0" NumRows="{rows}" NumCols="{cols}" '
                   f'Width="{tw}" Height="{th}" Pos-X="0" Pos-Y="0">{"".join(joints)}</ImageInfo></SlideStitchInfo>'
                   '<AoiOrigin><AOI0 OriginX="0" OriginY="0"/></AoiOrigin></EncodeInfo>')
    thumb = Image.fromarray(pyramid[-1]).resize((256, 192))
    ifds = [stripped_ifd(label_image(600, 200, (220, 220, 220)),
                         [(270, ASCII, "Label_Image"), (700, BYTE, iscan.encode()),
                          (306, ASCII, f"{DATE_TIFF} 10:30:00")]),
            stripped_ifd(thumb, [(270, ASCII, "Thumbnail")])]
    for k, a in enumerate(pyramid):
        extra = [(270, ASCII, f"level={k} mag={40 / 2 ** k:g} quality=90")]
        if k == 0:
            extra.append((700, BYTE, encode_info.encode()))
        ifds.append(tiled_ifd(a, extra, tw=tw, th=th))
    write_tiff(path, ifds, "bigtiff")


# ---------------------------------------------------------------------------------------------
# 3DHISTECH MIRAX (openslide-vendor-mirax.c): one 256 x 256 JPEG per camera image and level,
# CameraImageDivisionsPerSide=1, no overlap, no position buffer (OpenSlide lays the images out
# on the grid).

def make_mirax(path):
    folder = path[:-len(".mrxs")]
    os.makedirs(folder, exist_ok=True)
    open(path, "wb").close()  # OpenSlide reads only the folder beside it
    slide_id = "a1b2c3d4-0000-1111-2222-333344445555"
    iw = ih = 256
    nx, ny = W // iw, H // ih
    n_levels = 3
    base = levels(1)[0]
    data = bytearray(b"01.02" + slide_id.encode() + b"000" + b"\0" * 256)
    hier = []
    for k in range(n_levels):
        f = 2 ** k
        lv = np.asarray(Image.fromarray(base).resize((W // f, H // f), Image.BILINEAR))
        items = []
        for y in range(0, ny, f):
            for x in range(0, nx, f):
                t = np.full((ih, iw, 3), 255, np.uint8)
                part = lv[(y // f) * ih:(y // f + 1) * ih, (x // f) * iw:(x // f + 1) * iw]
                t[:part.shape[0], :part.shape[1]] = part
                b = jpeg(t)
                items.append((y * nx + x, len(data), len(b), 0))
                data += b
        hier.append(items)
    nonhier = []
    for image in (label_image(300, 200, (255, 255, 255)), label_image(600, 200, (210, 210, 230)),
                  label_image(600, 200, (200, 220, 230))):
        b = jpeg(image)
        nonhier.append((len(data), len(b), 0))
        data += b
    with open(os.path.join(folder, "Data0000.dat"), "wb") as f:
        f.write(data)

    def i32(*v):
        return struct.pack("<" + "i" * len(v), *v)

    index = bytearray(b"01.02" + slide_id.encode())
    root = len(index)
    index += b"\0" * 8
    hier_table = len(index)
    index += b"\0" * 4 * n_levels
    nonhier_table = len(index)
    index += b"\0" * 4 * len(nonhier)
    struct.pack_into("<ii", index, root, hier_table, nonhier_table)
    for k, items in enumerate(hier):
        record = len(index)
        index += i32(0, 0)
        page = len(index)
        index += i32(len(items), 0) + b"".join(i32(*it) for it in items)
        struct.pack_into("<i", index, record + 4, page)
        struct.pack_into("<i", index, hier_table + 4 * k, record)
    for k, (offset, length, fileno) in enumerate(nonhier):
        record = len(index)
        index += i32(0, 0)
        page = len(index)
        index += i32(1, 0, 0, 0, offset, length, fileno)
        struct.pack_into("<i", index, record + 4, page)
        struct.pack_into("<i", index, nonhier_table + 4 * k, record)
    with open(os.path.join(folder, "Index.dat"), "wb") as f:
        f.write(index)
    sections = "".join(
        f"[LAYER_0_LEVEL_{k}_SECTION]\nOVERLAP_X=0\nOVERLAP_Y=0\nMICROMETER_PER_PIXEL_X={MPP * 2 ** k}\n"
        f"MICROMETER_PER_PIXEL_Y={MPP * 2 ** k}\nIMAGE_FORMAT=JPEG\nIMAGE_QUALITY=90\n"
        f"IMAGE_FILL_COLOR_BGR=16777215\nDIGITIZER_WIDTH={iw}\nDIGITIZER_HEIGHT={ih}\n"
        f"IMAGE_CONCAT_FACTOR={0 if k == 0 else 1}\n"
        for k in range(n_levels))
    zoom = "".join(f"HIER_0_VAL_{k}=ZoomLevel_{k}\nHIER_0_VAL_{k}_SECTION=LAYER_0_LEVEL_{k}_SECTION\n"
                   for k in range(n_levels))
    scan_data = "".join(f"NONHIER_0_VAL_{i}=ScanDataLayer_{v}\nNONHIER_0_VAL_{i}_SECTION=NONHIER_0_VAL_{i}_SECTION\n"
                        for i, v in enumerate(("SlideBarcode", "SlideThumbnail", "SlidePreview")))
    ini = (f"[GENERAL]\nSLIDE_ID={slide_id}\nSLIDE_NAME={NAME}\nSLIDE_BARCODE={ACCESSION}\n"
           f"SLIDE_CREATIONDATETIME={DATE_DICOM}103000\nPROJECT_NAME={NAME_FILE}\nSLIDE_VERSION=01.02\n"
           f"CURRENT_SLIDE_VERSION=1.9\nIMAGENUMBER_X={nx}\nIMAGENUMBER_Y={ny}\nOBJECTIVE_MAGNIFICATION=20\n"
           f"CameraImageDivisionsPerSide=1\n"
           f"[HIERARCHICAL]\nHIER_COUNT=1\nHIER_0_NAME=Slide zoom level\nHIER_0_COUNT={n_levels}\n{zoom}"
           f"NONHIER_COUNT=1\nNONHIER_0_NAME=Scan data layer\nNONHIER_0_COUNT=3\n{scan_data}INDEXFILE=Index.dat\n"
           f"[DATAFILE]\nFILE_COUNT=1\nFILE_0=Data0000.dat\n"
           f"[NONHIER_0_VAL_0_SECTION]\nBARCODE_IMAGE_TYPE=JPEG\nBARCODE_VALUE={ACCESSION}\n"
           f"[NONHIER_0_VAL_1_SECTION]\nTHUMBNAIL_IMAGE_TYPE=JPEG\n[NONHIER_0_VAL_2_SECTION]\nPREVIEW_IMAGE_TYPE=JPEG\n"
           + sections)
    with open(os.path.join(folder, "Slidedat.ini"), "w") as f:
        f.write(ini)


# ---------------------------------------------------------------------------------------------
# What OpenSlide reads

def make_dicom(source, folder):
    """wsidicomizer converts `source`; its files are renamed by their role (level-0.dcm, label.dcm...)."""
    import shutil
    import subprocess
    import tempfile

    import pydicom

    meta = {"patient": {"name": NAME, "identifier": MRN, "birth_date": "1961-01-02", "sex": "female"},
            "study": {"identifier": "ST-1", "accession_number": ACCESSION, "date": DATE_ISO, "time": "10:30:00",
                      "referring_physician_name": OPERATOR.replace("-", "^")},
            "slide": {"identifier": f"{ACCESSION}-A1"},
            "equipment": {"manufacturer": "Philips", "model_name": "UFS", "device_serial_number": DICOM_DEVICE_SERIAL,
                          "software_versions": ["4.0.3"]}}
    shutil.rmtree(folder, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f)
        out = os.path.join(tmp, "out")
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "wsidicomizer"), "-i", source, "-o", out,
                        "-m", os.path.join(tmp, "meta.json"), "--tile-size", "256"], check=True, capture_output=True)
        os.makedirs(folder)
        files = []
        for n in os.listdir(out):
            ds = pydicom.dcmread(os.path.join(out, n), stop_before_pixels=True)
            files.append((ds.ImageType[2], -int(ds.TotalPixelMatrixColumns), n))
        level = 0
        for role, _, n in sorted(files):
            name = f"level-{level}.dcm" if role == "VOLUME" else f"{role.lower()}.dcm"
            level += role == "VOLUME"
            shutil.copy(os.path.join(out, n), os.path.join(folder, name))


def make_dicom_sparse(full, folder):
    """Level 0 of `full` as TILED_SPARSE without its second tile (pydicom)."""
    import shutil

    import pydicom
    from pydicom.encaps import encapsulate, generate_fragmented_frames
    from pydicom.sequence import Sequence

    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(full, folder)
    path = os.path.join(folder, "level-0.dcm")
    ds = pydicom.dcmread(path)
    frames = [b"".join(f) for f in generate_fragmented_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames))]
    across = -(-int(ds.TotalPixelMatrixColumns) // int(ds.Columns))
    kept, groups = [], Sequence()
    for i, frame in enumerate(frames):
        if i == 1:
            continue
        col, row = i % across, i // across
        position = pydicom.Dataset()
        position.ColumnPositionInTotalImagePixelMatrix = col * int(ds.Columns) + 1
        position.RowPositionInTotalImagePixelMatrix = row * int(ds.Rows) + 1
        position.XOffsetInSlideCoordinateSystem = 0
        position.YOffsetInSlideCoordinateSystem = 0
        position.ZOffsetInSlideCoordinateSystem = 0
        group = pydicom.Dataset()
        group.PlanePositionSlideSequence = Sequence([position])
        groups.append(group)
        kept.append(frame)
    ds.PerFrameFunctionalGroupsSequence = groups
    ds.DimensionOrganizationType = "TILED_SPARSE"
    ds.NumberOfFrames = len(kept)
    ds.PixelData = encapsulate(kept)
    ds.save_as(path)


EXPECTED = {
    "sample.ndpi": ("hamamatsu", {"macro"}),
    "philips.tiff": ("philips", {"label", "macro"}),
    "leica.scn": ("leica", {"macro"}),
    "ventana.bif": ("ventana", {"macro", "thumbnail"}),
    "mirax.mrxs": ("mirax", {"label", "macro", "thumbnail"}),
    "dicom/level-0.dcm": ("dicom", {"label", "macro"}),
    "dicom-sparse/level-0.dcm": ("dicom", {"label", "macro"}),
}


def over_white(region):
    white = Image.new("RGBA", region.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, region).convert("RGB")


def reference(path, vendor, associated):
    s = openslide.OpenSlide(path)
    p = s.properties
    assert p[openslide.PROPERTY_NAME_VENDOR] == vendor, (path, p[openslide.PROPERTY_NAME_VENDOR])
    assert set(s.associated_images) == associated, (path, set(s.associated_images))
    assert s.dimensions[0] >= W and s.dimensions[1] >= H, (path, s.dimensions)
    mpp = p.get(openslide.PROPERTY_NAME_MPP_X)
    assert mpp and abs(float(mpp) - MPP) < 1e-6, (path, mpp)
    out_levels = []
    for lv in range(s.level_count):
        w, h = s.level_dimensions[lv]
        ds = s.level_downsamples[lv]
        s.read_region((0, 0), lv, (min(w, 4096), min(h, 4096)))  # every tile decodes
        samples = []
        for x, y in sample_points(w, h):
            x0, y0 = int(round(x * ds)), int(round(y * ds))
            samples.append([x0, y0, list(over_white(s.read_region((x0, y0), lv, (1, 1))).getpixel((0, 0)))])
        out_levels.append({"width": w, "height": h, "downsample": ds, "samples": samples})
    obj = p.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)
    return {
        "vendor": vendor,
        "levels": out_levels,
        "mpp_x": float(p[openslide.PROPERTY_NAME_MPP_X]),
        "mpp_y": float(p[openslide.PROPERTY_NAME_MPP_Y]),
        "objective_power": float(obj) if obj else None,
        "associated": sorted(associated),
        "associated_sizes": {k: list(v.size) for k, v in s.associated_images.items()},
        "phi_properties": sorted(k for k, v in p.items() if any(x in v for x in PLANTED)),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    j = lambda n: os.path.join(OUT, n)  # noqa: E731
    make_ndpi(j("sample.ndpi"))
    make_philips(j("philips.tiff"))
    make_leica(j("leica.scn"))
    make_ventana(j("ventana.bif"))
    make_mirax(j("mirax.mrxs"))
    make_dicom(j("philips.tiff"), j("dicom"))
    make_dicom_sparse(j("dicom"), j("dicom-sparse"))
    ref = {"_generated_by": "tools/make_vendor_fixtures.py with openslide " + openslide.__library_version__,
           "planted_phi": PLANTED}
    for name, (vendor, associated) in EXPECTED.items():
        ref[name] = reference(j(name), vendor, associated)
        assert ref[name]["phi_properties"], f"{name}: OpenSlide shows none of the planted PHI"
    # The converter's UIDs identify the original study, series and images: none may be kept either.
    import pydicom

    ref["dicom_uids"] = sorted({str(getattr(pydicom.dcmread(os.path.join(j("dicom"), n), stop_before_pixels=True), a))
                                for n in os.listdir(j("dicom"))
                                for a in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")})
    with open(j("reference.json"), "w") as f:
        json.dump(ref, f, indent=1, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(OUT) for n in ns)
    print(f"wrote {OUT}: {total} bytes", file=sys.stderr)


def big_ndpi(path, width, height):
    """A larger NDPI for the benchmark (benches/vendors.rs): the same layout at another size."""
    global W, H
    W, H = width, height
    make_ndpi(path)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--ndpi":
        big_ndpi(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
