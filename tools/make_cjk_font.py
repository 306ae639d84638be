"""Dev tool: the Korean font the PDF report falls back to for Hangul (and CJK punctuation).

Takes Noto Sans CJK KR Regular from Debian's `fonts-noto-cjk` package (SIL Open Font License
1.1) and keeps only Hangul (syllables, Jamo, compatibility Jamo), CJK symbols and punctuation,
and half/full-width forms: what site names, free text and labels in Korean need. The PDF
writer (krilla) embeds only the glyphs a report uses, so the file's size does not reach
the PDF.

    apt-get download fonts-noto-cjk && dpkg-deb -x fonts-noto-cjk_*.deb /tmp/notocjk
    python -m venv /tmp/v && /tmp/v/bin/pip install fonttools
    /tmp/v/bin/python tools/make_cjk_font.py \
        /tmp/notocjk/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc static/fonts/NotoSansKR-Hangul.otf
"""

import sys

from fontTools import subset
from fontTools.ttLib import TTCollection

RANGES = [
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0x3130, 0x318F),  # Hangul compatibility Jamo
    (0xAC00, 0xD7A3),  # Hangul syllables
    (0xFF00, 0xFFEF),  # half-width and full-width forms
]


def main(src: str, out: str) -> None:
    collection = TTCollection(src)
    (font,) = [f for f in collection.fonts if f["name"].getDebugName(4) == "Noto Sans CJK KR"]
    options = subset.Options()
    options.hinting = False
    options.glyph_names = False
    options.name_IDs = ["*"]
    options.layout_features = ["*"]
    options.drop_tables += ["vhea", "vmtx", "VORG"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[u for lo, hi in RANGES for u in range(lo, hi + 1)])
    subsetter.subset(font)
    font.save(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
