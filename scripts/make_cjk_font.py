"""Make lessonlib's CJK font: Noto Sans CJK SC (SIL Open Font License 1.1), cut down to the characters of GB2312
(6,763 hanzi, the simplified characters of everyday Chinese) with ASCII, Latin-1, CJK punctuation and
full-width forms, so that plots can write class names such as 猫 and 狗 where the machine has no CJK font
(Colab's image has none).

    apt-get download fonts-noto-cjk      # Debian's package of googlefonts/noto-cjk
    dpkg-deb -x fonts-noto-cjk_*.deb x
    python scripts/make_cjk_font.py x/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc

Writes lessonlib/fonts/NotoSansSC-lessonlib.otf and its licence beside it; data/README.md records the
source, the package's SHA-256 and the size.
"""
import shutil
import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "lessonlib" / "fonts" / "NotoSansSC-lessonlib.otf"
FAMILY = "Noto Sans SC lessonlib"


def gb2312():
    """Every character GB2312 encodes (rows 0xA1-0xF7, cells 0xA1-0xFE)."""
    chars = []
    for hi in range(0xA1, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.append(bytes([hi, lo]).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    return chars


def main(ttc):
    collection = TTCollection(ttc)
    font = next(f for f in collection.fonts if f["name"].getDebugName(1) == "Noto Sans CJK SC")
    codepoints = {ord(c) for c in gb2312()} | set(range(0x20, 0x7F)) | set(range(0xA0, 0x100))
    codepoints |= set(range(0x3000, 0x3040)) | set(range(0xFF00, 0xFFF0))   # CJK punctuation, full-width forms
    options = subset.Options()
    options.layout_features = []          # plots need the glyphs, not vertical or ligature features
    options.name_IDs = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=codepoints)
    subsetter.subset(font)
    names = font["name"]
    for record in names.names:            # another family name: this cut is not the whole Noto Sans CJK SC
        if record.nameID in (1, 16):
            record.string = FAMILY
        elif record.nameID in (4,):
            record.string = FAMILY
        elif record.nameID == 6:
            record.string = FAMILY.replace(" ", "") + "-Regular"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    font.save(OUT)
    licence = Path(ttc).parents[3] / "doc" / "fonts-noto-cjk" / "copyright"
    if licence.is_file():
        shutil.copy(licence, OUT.parent / "NOTICE-noto-cjk.txt")
    print(f"{OUT}: {OUT.stat().st_size:,} bytes, {len(codepoints):,} code points asked for")


if __name__ == "__main__":
    main(sys.argv[1])
