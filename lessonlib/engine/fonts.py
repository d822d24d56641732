"""Text in any language in plots: class names such as 猫 and 狗 drawn, not as empty boxes.

matplotlib's default font (DejaVu Sans) has no Chinese, Japanese or Korean characters, and Colab's image has
no CJK font at all. `use_cjk_font()` adds a CJK font at the end of matplotlib's `font.family` list; matplotlib
then takes each character the first font lacks from the next one that has it. A CJK font the machine has comes first; otherwise the one
lessonlib ships: Noto Sans CJK SC (SIL Open Font License 1.1) cut down to the 6,763 characters of GB2312 with
Latin letters and punctuation (1.9 MB; `scripts/make_cjk_font.py`, provenance in data/README.md). Traditional
characters beyond GB2312 and Korean hangul need a system font (e.g. `apt install fonts-noto-cjk`).
"""
from pathlib import Path

__all__ = ["SHIPPED", "use_cjk_font"]

# Families with CJK characters found on Linux, macOS and Windows machines, the most complete first.
KNOWN = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", "WenQuanYi Micro Hei",
         "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB", "Heiti SC", "SimHei",
         "Droid Sans Fallback", "Noto Sans CJK JP", "Noto Sans CJK TC")
SHIPPED = Path(__file__).resolve().parent.parent / "fonts" / "NotoSansSC-lessonlib.otf"


def use_cjk_font():
    """Make matplotlib draw CJK characters (see above); returns the family it falls back to. Safe to call often."""
    from matplotlib import font_manager, rcParams

    have = {f.name for f in font_manager.fontManager.ttflist}
    family = next((name for name in KNOWN if name in have), None)
    if family is None:
        if str(SHIPPED) not in {f.fname for f in font_manager.fontManager.ttflist}:
            font_manager.fontManager.addfont(str(SHIPPED))
        family = font_manager.FontProperties(fname=str(SHIPPED)).get_name()
    if family not in rcParams["font.family"]:   # matplotlib falls back along this list, character by character
        rcParams["font.family"] = [*rcParams["font.family"], family]
    return family
