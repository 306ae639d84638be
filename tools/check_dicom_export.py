#!/usr/bin/env python3
"""Reads a DICOM whole-slide export back with independent readers, for the test suite
(tests/it/vendor_slides.rs): pydicom for the header and the encapsulated frames, OpenSlide 4
(openslide-python + openslide-bin) for the pyramid and the pixels.

    check_dicom_export.py SERIES_DIR OUT_PNG

Prints one JSON object: per level (level-N.dcm) the attributes that matter and the SHA-256 of
every frame (its padding byte after the JPEG's end removed); OpenSlide's vendor, levels, mpp and
associated images; and writes OpenSlide's level 0 (composited over white) to OUT_PNG.
"""

import glob
import hashlib
import json
import os
import sys

import openslide
import pydicom
from PIL import Image
from pydicom.encaps import generate_frames


def main(series, png):
    levels = []
    for path in sorted(glob.glob(os.path.join(series, "level-*.dcm")), key=lambda p: int(p.rsplit("-", 1)[1][:-4])):
        ds = pydicom.dcmread(path)
        n = int(ds.NumberOfFrames)
        frames = [hashlib.sha256(f.rstrip(b"\0")).hexdigest() for f in generate_frames(ds.PixelData, number_of_frames=n)]
        levels.append({
            "sop_class": str(ds.SOPClassUID),
            "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
            "image_type": list(ds.ImageType),
            "patient_name": str(ds.PatientName),
            "patient_id": str(ds.PatientID),
            "identity_removed": str(ds.PatientIdentityRemoved),
            "deid_codes": [str(c.CodeValue) for c in ds.DeidentificationMethodCodeSequence],
            "manufacturer": str(ds.get("Manufacturer", "")),
            "device_serial": str(ds.get("DeviceSerialNumber", "")),
            "study_uid": str(ds.StudyInstanceUID),
            "series_uid": str(ds.SeriesInstanceUID),
            "size": [int(ds.TotalPixelMatrixColumns), int(ds.TotalPixelMatrixRows)],
            "tile": [int(ds.Columns), int(ds.Rows)],
            "photometric": str(ds.PhotometricInterpretation),
            "frames": frames,
        })
    slide = openslide.OpenSlide(os.path.join(series, "level-0.dcm"))
    w, h = slide.dimensions
    white = Image.new("RGBA", (w, h), (255, 255, 255, 255))
    Image.alpha_composite(white, slide.read_region((0, 0), 0, (w, h))).convert("RGB").save(png)
    print(json.dumps({
        "levels": levels,
        "openslide": {
            "vendor": slide.properties.get(openslide.PROPERTY_NAME_VENDOR),
            "levels": [list(d) for d in slide.level_dimensions],
            "mpp_x": float(slide.properties.get(openslide.PROPERTY_NAME_MPP_X, "nan")),
            "associated": sorted(slide.associated_images),
        },
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
