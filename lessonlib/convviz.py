"""A convolutional network as the famous spreadsheet shows it, one number grid at a time.

The spreadsheet (fast.ai's conv-example.xlsx) computes, on a 28x28 handwritten digit:
conv layer 1 (two 3x3 filters, each cell MAX(0, SUM(3x3 patch * filter)): convolution and
ReLU in one), conv layer 2 (3x3x2 filters that sum over both channels), 2x2 max-pooling, and a
dense layer whose weight grid is as large as its whole input (SUMPRODUCT). The functions here
compute exactly that, with loops a student can read; `conv2d_fast` is the vectorised twin.
The tests hold every one of them to PyTorch's own ops.
"""
import gzip
from pathlib import Path

import numpy as np

from lessonlib import datasets
from lessonlib.engine.fonts import use_cjk_font
from lessonlib.engine.language import problem, say

__all__ = ["kernel", "conv2d_valid", "conv2d_fast", "relu", "maxpool2x2", "dense", "spreadsheet_forward",
           "spreadsheet_filters", "mnist_digits", "load_digit_image", "show_grid", "explain_cell",
           "show_stages", "to_xlsx", "strongest_responses", "kernel_name", "digit_title", "photo_title", "show_digit",
           "describe_cell", "describe_difference", "describe_formula", "show_filters", "describe_responses",
           "show_responses"]

# Image kernels (filters), named as in the lesson by where their positive weights sit: "top_edge"
# (the spreadsheet's first filter) fires where bright pixels lie above dark ones, "left_edge"
# where bright pixels lie left of dark ones, and so on.
KERNELS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "top_edge": [[1, 1, 1], [0, 0, 0], [-1, -1, -1]],
    "bottom_edge": [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
    "left_edge": [[1, 0, -1], [1, 0, -1], [1, 0, -1]],
    "right_edge": [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
    "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel_y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "blur": [[1 / 9] * 3] * 3,
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
}


def kernel(name):
    """One of `KERNELS` as a 3x3 float array."""
    if name not in KERNELS:
        raise ValueError(problem("unknown kernel {name!r}: choose one of {KERNELS}",
                                 name=name, KERNELS=sorted(KERNELS)))
    return np.array(KERNELS[name], dtype=np.float64)


def kernel_name(name):
    """A kernel of `KERNELS` named as people read it: 'blur' (模糊 under LESSONLIB_LANG=zh); names with an
    underscore ('top_edge') are shown as a student types them (`editor.set_kernel("top_edge")`), any other as given."""
    words = {"identity": say("identity"), "blur": say("blur"), "sharpen": say("sharpen"), "emboss": say("emboss")}
    return words.get(name, name)


def _channels(x):
    x = np.asarray(x, dtype=np.float64)
    return x[None] if x.ndim == 2 else x


def conv2d_valid(image, kern):
    """Convolution as the spreadsheet does it: each output cell is SUM(patch * kernel), no padding.

    `image` is (H, W) or (C, H, W); `kern` is (k, k) or (C, k, k), summed over the channels.
    (Like PyTorch's conv2d, this is cross-correlation: the kernel is not flipped.)
    """
    image, kern = _channels(image), _channels(kern)
    if image.shape[0] != kern.shape[0]:
        raise ValueError(problem("the image has {image_channels} channels but the kernel {kernel_channels}",
                                 image_channels=image.shape[0], kernel_channels=kern.shape[0]))
    _, h, w = image.shape
    k = kern.shape[-1]
    out = np.zeros((h - k + 1, w - k + 1))
    for i in range(h - k + 1):
        for j in range(w - k + 1):
            patch = image[:, i:i + k, j:j + k]
            out[i, j] = np.sum(patch * kern)
    return out


def conv2d_fast(image, kern):
    """The same as `conv2d_valid`, vectorised with a sliding window."""
    image, kern = _channels(image), _channels(kern)
    windows = np.lib.stride_tricks.sliding_window_view(image, kern.shape[-2:], axis=(1, 2))
    return np.einsum("chwij,cij->hw", windows, kern)


def relu(x):
    """Negative numbers become 0: MAX(0, x)."""
    return np.maximum(0, x)


def maxpool2x2(x):
    """The largest of each 2x2 block (an odd last row or column is dropped, as PyTorch does)."""
    x = np.asarray(x, dtype=np.float64)
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    out = np.zeros(x.shape[:-2] + (h, w))
    for i in range(h):
        for j in range(w):
            out[..., i, j] = x[..., 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(-2, -1))
    return out


def dense(x, weights, bias=0.0):
    """A fully connected layer: for each output, SUMPRODUCT of the whole input with its weight grid.

    `weights` has the input's shape, with one more leading axis for several outputs.
    """
    x, weights = np.asarray(x, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    return np.sum(weights * x, axis=tuple(range(weights.ndim - x.ndim, weights.ndim))) + bias


def spreadsheet_forward(image, filters1, filters2, dense_weights):
    """Every stage of the spreadsheet's network, as a dict of number grids.

    filters1: (2, 3, 3), one filter per conv1 channel; filters2: (2, 2, 3, 3), for each conv2
    channel a 3x3 filter per conv1 channel; dense_weights: shaped like the pooled output.
    """
    conv1 = np.stack([relu(conv2d_valid(image, f)) for f in filters1])
    conv2 = np.stack([relu(conv2d_valid(conv1, f)) for f in filters2])
    pooled = maxpool2x2(conv2)
    return {"input": np.asarray(image, dtype=np.float64), "conv1": conv1, "conv2": conv2, "maxpool": pooled,
            "dense": dense(pooled, dense_weights)}


def spreadsheet_filters(seed=0):
    """The spreadsheet's hand-made layer-1 filters (top edge, left edge) and random later weights."""
    rng = np.random.default_rng(seed)
    filters1 = np.stack([kernel("top_edge"), kernel("left_edge")])
    filters2 = rng.uniform(-0.5, 1, size=(2, 2, 3, 3)).round(2)
    dense_weights = rng.uniform(0, 1, size=(2, 12, 12)).round(2)
    return filters1, filters2, dense_weights


# ---------------------------------------------------------------- digits

def mnist_digits(per_class=None):
    """5,000 real MNIST digits that come with lessonlib: (images (N, 28, 28) uint8, labels).

    The file (`datasets.get("mnist-5k")`, data/README.md says where it comes from) holds 500 digits of
    each class, ordered by class; `per_class` keeps the first few of each.
    """
    with gzip.open(datasets.get("mnist-5k") / "mnist_5k.csv.gz", "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    images, labels = table[:, :784].reshape(-1, 28, 28).astype(np.uint8), table[:, 784].astype(np.int64)
    if per_class is not None:
        keep = np.concatenate([np.flatnonzero(labels == d)[:per_class] for d in np.unique(labels)])
        images, labels = images[keep], labels[keep]
    return images, labels


def load_digit_image(path):
    """A greyscale image file as a (H, W) array scaled to 0..1 (any size; digits are 28x28)."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("L"), dtype=np.float64) / 255


# ---------------------------------------------------------------- what a deeper layer responds to

def describe_responses(top, responses):
    """One line for people on what `strongest_responses` found (`top`, `responses`: what it returned)."""
    return say("{channels} channels in this layer; for {n} of them, the {k} photos (of {images}) they respond to "
               "most:", channels=responses.shape[1], n=len(top), k=len(next(iter(top.values()), [])),
               images=responses.shape[0])


def show_responses(images, top):
    """One row per channel of `top` ({channel: image indices}, from `strongest_responses`): the images (CHW
    tensors, `images[i]`) it responds to most, the channel named on the left. Returns the figure."""
    import matplotlib.pyplot as plt
    use_cjk_font()   # text in the reader's language
    k = max(len(picks) for picks in top.values())
    fig, axes = plt.subplots(len(top), k, figsize=(9, 1.9 * len(top)), squeeze=False)
    for row, (channel, picks) in zip(axes, top.items()):
        for ax, i in zip(row, picks):
            ax.imshow(images[i].permute(1, 2, 0))
        for ax in row:
            ax.set_xticks([]); ax.set_yticks([]); ax.grid(False)
        row[0].set_ylabel(say("channel {channel}", channel=channel))
    fig.suptitle(say("what {n} channels of a deep layer respond to most", n=len(top)), y=1.0)
    fig.tight_layout()
    return fig


def strongest_responses(model, layer, images, k=5, n_channels=4, bs=32):
    """Which images make `layer`'s channels respond most: ({channel: indices of its top `k` images}, responses).

    Runs `model` (in eval mode, no gradients) over `images` (a tensor, N images the model takes), keeps each
    channel's mean response over its feature map per image (`responses`: N x channels), and picks the
    `n_channels` channels whose responses differ most between images (the most selective ones).
    """
    import torch

    kept = []
    hook = layer.register_forward_hook(lambda module, args, out: kept.append(out.detach().float().mean((2, 3)).cpu()))
    try:
        model.eval()
        with torch.no_grad():
            for i in range(0, len(images), bs):
                model(images[i:i + bs])
    finally:
        hook.remove()
    responses = torch.cat(kept)
    channels = responses.std(0).argsort(descending=True)[:n_channels]
    k = min(k, len(images))
    return {int(c): responses[:, c].argsort(descending=True)[:k].tolist() for c in channels}, responses


# ---------------------------------------------------------------- spreadsheet-style views

def digit_title(digit):
    """A digit image's name for people: 'digit 7'."""
    return say("digit {digit}", digit=digit)


def photo_title(cls):
    """A photo's name for people by its class folder: 'a cat' ('cats' or 'cat'), 'a dog'; other classes as given."""
    names = {"cat": say("a cat"), "cats": say("a cat"), "dog": say("a dog"), "dogs": say("a dog")}
    return names.get(cls, cls)


def show_digit(digit, label, rows, cols):
    """A digit whole, titled by what it is and its size ('a 7, 28x28'), beside the crop `rows` x `cols` (each a
    (first, end) pair, end excluded) with its pixel values written in. Returns the figure."""
    import matplotlib.pyplot as plt
    use_cjk_font()   # text in the reader's language
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    show_grid(digit, axes[0], say("a {label}, {h}x{w}", label=label, h=digit.shape[0], w=digit.shape[1]),
              numbers=False, cmap="Greys_r")
    show_grid(digit[rows[0]:rows[1], cols[0]:cols[1]], axes[1],
              say("rows {first}-{last}, columns {first_col}-{last_col}", first=rows[0], last=rows[1] - 1,
                  first_col=cols[0], last_col=cols[1] - 1), numbers=True, cmap="Greys_r")
    return fig


def describe_cell(conv, value):
    """One line for people: the feature map's shape and the value of the cell `explain_cell` computed."""
    return say("the whole feature map: {shape}; this cell: {value:.2f}", shape=conv.shape, value=value)


def describe_difference(ours, theirs, name="PyTorch"):
    """One line for people: the largest difference between two arrays, `theirs` computed by `name`."""
    return say("max difference from {name}: {difference}", name=name,
               difference=np.abs(np.asarray(ours) - np.asarray(theirs)).max())


def describe_formula(layer, formula):
    """One line for people: the formula of the first cell of `layer` in the workbook `to_xlsx` wrote."""
    return say("first {layer} cell: {formula}", layer=layer, formula=formula)


def show_filters(learned, names):
    """Learned first-layer filters (top row, 'learned 1', ...) above the hand-made kernels `names` (bottom row,
    named as `kernel_name` says), drawn alike. Returns the figure."""
    import matplotlib.pyplot as plt
    use_cjk_font()   # text in the reader's language
    cols = max(len(learned), len(names))
    fig, axes = plt.subplots(2, cols, figsize=(1.75 * cols, 4), squeeze=False)
    for ax, f, i in zip(axes[0], learned, range(cols)):
        show_grid(f, ax, say("learned {i}", i=i + 1), numbers=False, cmap="RdBu_r")
    for ax, name in zip(axes[1], names):
        show_grid(kernel(name), ax, kernel_name(name), numbers=False, cmap="RdBu_r")
    fig.suptitle(say("first-layer filters: learned (top) and hand-made (bottom)"))
    return fig


def show_grid(values, ax=None, title=None, numbers=None, cmap="RdYlGn", fmt="{:.1f}", highlight=None, scale=None):
    """A grid coloured like a spreadsheet's colour scale; the numbers are written in when it is small.

    highlight: (row, col, height, width) drawn as a box, e.g. the 3x3 patch behind an output cell.
    scale: the colour scale's ends: None (the grid's own), (low, high), or "centered" (0 is the middle colour).
    """
    import matplotlib.pyplot as plt
    use_cjk_font()   # text in the reader's language
    from matplotlib.patches import Rectangle

    try:
        values = np.atleast_2d(np.asarray(values, dtype=np.float64))   # one row of numbers is a grid of one row
    except (TypeError, ValueError):
        raise ValueError(problem("show_grid draws numbers: give a 2-D array or list of lists of numbers")) from None
    if values.ndim != 2 or values.size == 0:
        if values.ndim > 2:
            raise ValueError(problem("show_grid draws a 2-D grid (rows x columns) with at least one cell; got "
                                     "shape {shape}: pick one channel, e.g. values[0]", shape=values.shape))
        raise ValueError(problem("show_grid draws a 2-D grid (rows x columns) with at least one cell; got shape "
                                 "{shape}", shape=values.shape))
    if highlight is not None:
        r, c, h, w = highlight
        if r < 0 or c < 0 or h < 1 or w < 1 or r + h > values.shape[0] or c + w > values.shape[1]:
            raise ValueError(problem("highlight={highlight}: (row, col, height, width) must lie inside the "
                                     "{rows}x{cols} grid",
                                     highlight=highlight, rows=values.shape[0], cols=values.shape[1]))
    ax = ax or plt.subplots(figsize=(max(2, values.shape[1] * 0.3), max(2, values.shape[0] * 0.3)))[1]
    vmin, vmax = scale if isinstance(scale, tuple) else (None, None)
    if scale == "centered":
        limit = max(np.abs(values).max(), 1e-9)
        vmin, vmax = -limit, limit
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    numbers = max(values.shape) <= 14 if numbers is None else numbers
    if numbers:
        for (i, j), v in np.ndenumerate(values):
            r, g, b, _ = image.cmap(image.norm(v))
            color = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"   # readable on any cell
            ax.text(j, i, fmt.format(v), ha="center", va="center", color=color,
                    fontsize=7 if max(values.shape) > 8 else 9)
    if highlight is not None:
        r, c, h, w = highlight
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), w, h, fill=False, edgecolor="blue", linewidth=2.5))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def explain_cell(image, kern, row, col):
    """How conv output cell (row, col) was computed: the patch, the kernel, their products, the sum.

    Returns (figure, value) where value = SUM(patch * kernel) before ReLU.
    """
    import matplotlib.pyplot as plt
    use_cjk_font()   # text in the reader's language

    image, kern = np.asarray(image, dtype=np.float64), np.asarray(kern, dtype=np.float64)
    k = kern.shape[0]
    if not (0 <= row <= image.shape[0] - k and 0 <= col <= image.shape[1] - k):
        raise ValueError(problem("cell ({row}, {col}) is outside the {out_h}x{out_w} output",
                                 row=row, col=col, out_h=image.shape[0] - k + 1, out_w=image.shape[1] - k + 1))
    patch = image[row:row + k, col:col + k]
    value = float(np.sum(patch * kern))
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), gridspec_kw={"width_ratios": [3, 1, 1, 1]})
    lo, hi = min(0.0, image.min()), max(1.0, image.max())
    show_grid(image, axes[0], say("input: the {k}x{k} patch", k=k), numbers=False, cmap="Greys_r",
              highlight=(row, col, k, k), scale=(lo, hi))
    show_grid(patch, axes[1], say("patch"), numbers=True, fmt="{:.2f}", cmap="Greys_r", scale=(lo, hi))
    show_grid(kern, axes[2], say("kernel"), numbers=True, fmt="{:.2f}", cmap="RdBu_r", scale="centered")
    show_grid(patch * kern, axes[3], say("patch x kernel"), numbers=True, fmt="{:.2f}", cmap="RdBu_r",
              scale="centered")
    fig.suptitle(say("output[{row}, {col}] = SUM(patch x kernel) = {value:.2f};  after ReLU: {relu:.2f}",
                     row=row, col=col, value=value, relu=max(0.0, value)))
    fig.tight_layout()
    return fig, value


def show_stages(stages):
    """Every stage of `spreadsheet_forward` side by side: input, conv1, conv2, max-pool."""
    import matplotlib.pyplot as plt
    use_cjk_font()   # text in the reader's language

    grids = [(say("input"), stages["input"])]
    grids += [(say("conv1 channel {c} (ReLU)", c=c + 1), g) for c, g in enumerate(stages["conv1"])]
    grids += [(say("conv2 channel {c} (ReLU)", c=c + 1), g) for c, g in enumerate(stages["conv2"])]
    grids += [(say("max-pool {c}", c=c + 1), g) for c, g in enumerate(stages["maxpool"])]
    fig, axes = plt.subplots(1, len(grids), figsize=(2.6 * len(grids), 3))
    for ax, (title, g) in zip(axes, grids):
        show_grid(g, ax, f"{title}\n{g.shape[0]}x{g.shape[1]}", numbers=False, cmap="viridis")
    fig.suptitle(say("dense output (SUMPRODUCT with its weights): {dense}", dense=np.round(stages["dense"], 2).tolist()))
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    return fig


# ---------------------------------------------------------------- a real workbook with live formulas

def _cell(row, col):
    from openpyxl.utils import get_column_letter
    return f"{get_column_letter(col)}{row}"


def _block(ws, top, left, values, fmt="0.00"):
    for (i, j), v in np.ndenumerate(np.asarray(values)):
        c = ws.cell(top + i, left + j, float(v))
        c.number_format = fmt


def _range(top, left, h, w, absolute=False):
    a, b = _cell(top, left), _cell(top + h - 1, left + w - 1)
    if absolute:
        import re
        a, b = (re.sub(r"([A-Z]+)(\d+)", r"$\1$\2", x) for x in (a, b))
    return f"{a}:{b}"


def to_xlsx(path, image, filters1=None, filters2=None, dense_weights=None):
    """Write the spreadsheet network as an .xlsx with live formulas and colour scales; returns the layout.

    Change a filter cell in Excel or LibreOffice and every later grid recomputes. The layout
    (a dict of where each grid lies: sheet row, column, height, width) lets tests read it back.
    """
    from openpyxl import Workbook
    from openpyxl.formatting.rule import ColorScaleRule

    image = np.asarray(image, dtype=np.float64)
    d1, d2, dw = spreadsheet_filters()
    filters1 = d1 if filters1 is None else np.asarray(filters1, dtype=np.float64)
    filters2 = d2 if filters2 is None else np.asarray(filters2, dtype=np.float64)
    h, w = image.shape
    h1, w1 = h - 2, w - 2
    h2, w2 = h1 - 2, w1 - 2
    hp, wp = h2 // 2, w2 // 2
    dense_weights = dw[:, :hp, :wp] if dense_weights is None else np.asarray(dense_weights, dtype=np.float64)
    if dense_weights.shape != (2, hp, wp):
        raise ValueError(problem("dense_weights must be (2, {hp}, {wp}) for a {h}x{w} image",
                                 hp=hp, wp=wp, h=h, w=w))

    wb = Workbook()
    ws = wb.active
    ws.title = "conv-example"
    gap = 2
    layout = {"input": (2, 1, h, w)}
    col = 1 + w + gap
    layout["filters1"] = [(2 + c * 4, col, 3, 3) for c in range(2)]
    col += 3 + gap
    layout["conv1"] = [(2 + c * (h1 + gap), col, h1, w1) for c in range(2)]
    col += w1 + gap
    layout["filters2"] = [[(2 + o * 8 + c * 4, col, 3, 3) for c in range(2)] for o in range(2)]
    col += 3 + gap
    layout["conv2"] = [(2 + o * (h2 + gap), col, h2, w2) for o in range(2)]
    col += w2 + gap
    layout["maxpool"] = [(2 + o * (hp + gap), col, hp, wp) for o in range(2)]
    col += wp + gap
    layout["dense_weights"] = [(2 + o * (hp + gap), col, hp, wp) for o in range(2)]
    col += wp + gap
    layout["dense"] = (2, col, 1, 1)

    titles = {"input": layout["input"], "conv1 filters": layout["filters1"][0], "conv1 (ReLU)": layout["conv1"][0],
              "conv2 filters": layout["filters2"][0][0], "conv2 (ReLU)": layout["conv2"][0],
              "maxpool": layout["maxpool"][0], "dense weights": layout["dense_weights"][0], "dense": layout["dense"]}
    for text, (r, c, _, _) in titles.items():
        ws.cell(r - 1, c, text)
    _block(ws, *layout["input"][:2], image)
    for c, (r0, c0, _, _) in enumerate(layout["filters1"]):
        _block(ws, r0, c0, filters1[c])
    for o in range(2):
        for c, (r0, c0, _, _) in enumerate(layout["filters2"][o]):
            _block(ws, r0, c0, filters2[o, c])
        r0, c0, _, _ = layout["dense_weights"][o]
        _block(ws, r0, c0, dense_weights[o])

    ir, ic = layout["input"][:2]
    for c, (r0, c0, _, _) in enumerate(layout["conv1"]):
        fr, fc = layout["filters1"][c][:2]
        for i in range(h1):
            for j in range(w1):
                ws.cell(r0 + i, c0 + j, f"=MAX(0,SUMPRODUCT({_range(ir + i, ic + j, 3, 3)},"
                                        f"{_range(fr, fc, 3, 3, absolute=True)}))").number_format = "0.00"
    for o, (r0, c0, _, _) in enumerate(layout["conv2"]):
        for i in range(h2):
            for j in range(w2):
                terms = []
                for c in range(2):
                    ar, ac = layout["conv1"][c][:2]
                    fr, fc = layout["filters2"][o][c][:2]
                    terms.append(f"SUMPRODUCT({_range(ar + i, ac + j, 3, 3)},{_range(fr, fc, 3, 3, absolute=True)})")
                ws.cell(r0 + i, c0 + j, f"=MAX(0,{'+'.join(terms)})").number_format = "0.00"
    for o, (r0, c0, _, _) in enumerate(layout["maxpool"]):
        ar, ac = layout["conv2"][o][:2]
        for i in range(hp):
            for j in range(wp):
                ws.cell(r0 + i, c0 + j, f"=MAX({_range(ar + 2 * i, ac + 2 * j, 2, 2)})").number_format = "0.00"
    parts = [f"SUMPRODUCT({_range(*layout['dense_weights'][o])},{_range(*layout['maxpool'][o])})" for o in range(2)]
    ws.cell(*layout["dense"][:2], f"={'+'.join(parts)}").number_format = "0.00"

    scale = ColorScaleRule(start_type="min", start_color="F8696B", mid_type="percentile", mid_value=50,
                           mid_color="FFEB84", end_type="max", end_color="63BE7B")
    for key in ("input", "conv1", "conv2", "maxpool"):
        for r0, c0, hh, ww in (layout[key] if isinstance(layout[key], list) else [layout[key]]):
            ws.conditional_formatting.add(_range(r0, c0, hh, ww), scale)
    for c in range(1, col + 2):
        ws.column_dimensions[_cell(1, c).rstrip("0123456789")].width = 5
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return layout
