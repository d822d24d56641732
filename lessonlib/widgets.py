"""Interactive explorers for the lessons (ipywidgets).

Each explorer keeps its state in plain attributes and methods that a test can drive
without a browser; `widget()` only builds the controls and the display around them.
"""
import numpy as np

from lessonlib.engine.language import problem, say
from lessonlib.lr_finder import describe_region, rule_at

__all__ = ["AugmentationExplorer", "KernelEditor", "LRExplorer"]


class LRExplorer:
    """Explore a learning-rate finder's curve: pick a rate, read what it means, try it.

    State: `lr` (the chosen rate), `label`/`explanation` (what that part of the curve means), `rule` (the
    suggestion of `lrf.suggestions` this rate is, or None),
    `runs` ({rate: losses of a short training from the same starting point}).

    Example:
        >>> explorer = LRExplorer(learn, lrf)
        >>> explorer.widget()          # slider, explanation, "train at this rate" button, plot
        >>> explorer.set_lr(1e-1); explorer.train()   # the same, without a browser
    """

    def __init__(self, learn, lrf, num_it=20):
        self.learn, self.lrf, self.num_it = learn, lrf, num_it
        self.runs = {}
        self.set_lr(lrf.suggestion)

    def set_lr(self, lr):
        """Choose a learning rate within the swept range and update the explanation."""
        lo, hi = float(self.lrf.lrs[0]), float(self.lrf.lrs[-1])
        describe_region(self.lrf, lr)   # refuses NaN, 0 and negative rates with a message, before anything changes
        self.lr = float(np.clip(lr, lo, hi))
        self.label, self.explanation = describe_region(self.lrf, self.lr)
        self.rule = rule_at(self.lrf, self.lr)
        return self.label

    def heading(self, rate=True):
        """The chosen rate, its region and which suggestion it is: e.g. "1.0e-02: high (the notes' rule)"."""
        named = say(self.label)
        if self.rule is not None:
            rule = {"power_of_ten_below_min": say("the notes' rule"), "order_below_min": say("the minimum / 10"),
                    "steepest": say("steepest"), "valley": say("lrf.suggestion (valley)")}.get(self.rule, self.rule)
            named = say("{region} ({rule})", region=named, rule=rule)
        return f"{self.lr:.1e}: {named}" if rate else named

    def train(self):
        """Train `num_it` mini-batches at the chosen rate from the learner's current state (then restore it)."""
        self.runs[self.lr] = self.learn.try_lr(self.lr, self.num_it)
        return self.runs[self.lr]

    def draw(self, fig=None):
        """The finder's curve with the chosen rate marked, and the loss of every run tried so far."""
        import matplotlib.pyplot as plt
        fig = fig or plt.figure(figsize=(10, 3.6))
        fig.clear()
        left, right = fig.subplots(1, 2)
        self.lrf.plot(suggestions=False, ax=left)
        left.axvline(self.lr, color="k", linestyle="--")
        left.set_title(self.heading())
        for lr, losses in sorted(self.runs.items()):
            right.plot(np.arange(1, len(losses) + 1), losses, label=f"{lr:.1e} ({say(describe_region(self.lrf, lr)[0])})")
        right.set(xlabel=say("mini-batch"), ylabel=say("training loss"), title=say("training at a constant rate"))
        if self.runs:
            right.legend(fontsize=8)
            finite = np.concatenate([l[np.isfinite(l)] for l in self.runs.values()])
            if len(finite):
                right.set_ylim(0, min(finite.max(), 5 * np.median(finite) + 1e-9) * 1.1)
        fig.tight_layout()
        return fig

    def widget(self):
        """Slider over the swept range, the explanation, a button that trains, and the plots."""
        import ipywidgets as w
        import matplotlib.pyplot as plt
        from IPython.display import display

        lo, hi = np.log10(self.lrf.lrs[0]), np.log10(self.lrf.lrs[-1])
        slider = w.FloatLogSlider(value=self.lr, base=10, min=lo, max=hi, step=0.05, description=say("learning rate"),
                                  readout_format=".1e", style={"description_width": "initial"},
                                  layout=w.Layout(width="60%"))
        text = w.HTML()
        button = w.Button(description=say("train {n} mini-batches at this rate", n=self.num_it), icon="play",
                          layout=w.Layout(width="auto"))
        out = w.Output()

        def refresh():
            text.value = f"<b>{self.heading(rate=False)}</b>: {self.explanation}"
            with out:
                out.clear_output(wait=True)
                fig = self.draw()
                display(fig)
                plt.close(fig)

        def on_slide(change):
            self.set_lr(change["new"])
            refresh()

        def on_click(_):
            button.disabled = True
            try:
                self.train()
            finally:
                button.disabled = False
            refresh()

        slider.observe(on_slide, names="value")
        button.on_click(on_click)
        refresh()
        return w.VBox([slider, text, button, out])


def _greyscale(image, i):
    """One image as a (H, W) float array: colour (H, W, 3 or 4) becomes its luminance; too small or not finite is
    refused with what was given."""
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 3 and x.shape[-1] in (3, 4):
        x = x[..., :3] @ np.array([0.299, 0.587, 0.114])   # luminance, as a greyscale photo would be
    elif x.ndim == 3 and 1 in (x.shape[0], x.shape[-1]):
        x = x.reshape(x.shape[1:] if x.shape[0] == 1 else x.shape[:-1])
    if x.ndim != 2 or min(x.shape) < 4:
        raise ValueError(problem("image {i} has shape {shape}: give greyscale (H, W) or colour (H, W, 3) images of "
                                 "at least 4x4 pixels", i=i, shape=np.shape(image)))
    if not np.isfinite(x).all():
        raise ValueError(problem("image {i} holds NaN or infinite values", i=i))
    return x


class KernelEditor:
    """Edit a 3x3 kernel and watch the feature map, after ReLU and after max-pooling, change.

    State: `kernel` (3x3 array), `index` (which image), `images`; `outputs()` computes the
    three grids with `lessonlib.convviz`; `widget()` builds the controls.

    Example:
        >>> editor = KernelEditor(digits)
        >>> editor.widget()
        >>> editor.set_kernel("left_edge"); editor.set_cell(1, 1, 2.0); editor.outputs()["relu"]
    """

    def __init__(self, images, titles=None, kernel="top_edge"):
        self.images = [_greyscale(im, i) for i, im in enumerate(images)]
        if not self.images:
            raise ValueError(problem("give at least one image"))
        self.titles = list(titles) if titles is not None else [say("image {i}", i=i) for i in range(len(self.images))]
        self.index = 0
        self.set_kernel(kernel)

    def set_kernel(self, kernel):
        """Use a preset by name (see `convviz.KERNELS`) or any 3x3 array."""
        from lessonlib.convviz import kernel as preset
        k = preset(kernel) if isinstance(kernel, str) else np.asarray(kernel, dtype=np.float64)
        if k.shape != (3, 3):
            raise ValueError(problem("the kernel must be 3x3, got {shape}", shape=k.shape))
        if not np.isfinite(k).all():
            raise ValueError(problem("the kernel holds NaN or infinite numbers: use ordinary numbers"))
        self.kernel = k.copy()
        return self.kernel

    def set_cell(self, row, col, value):
        """Change one number of the kernel."""
        if not (isinstance(row, (int, np.integer)) and isinstance(col, (int, np.integer)) and 0 <= row < 3
                and 0 <= col < 3):
            raise IndexError(problem("cell ({row}, {col}) is not in the 3x3 kernel: rows and columns go from 0 to 2",
                                     row=row, col=col))
        if not np.isfinite(float(value)):
            raise ValueError(problem("value={value!r}: a kernel cell holds an ordinary number, such as -1, 0.5 or 2",
                                     value=value))
        self.kernel[row, col] = float(value)

    def select(self, index):
        """Choose which image the kernel runs on."""
        if not 0 <= index < len(self.images):
            raise IndexError(problem("image {index} does not exist: there are {n_images}",
                                     index=index, n_images=len(self.images)))
        self.index = index

    def outputs(self):
        """{"conv": feature map, "relu": after ReLU, "pooled": after 2x2 max-pool} for the chosen image."""
        from lessonlib.convviz import conv2d_fast, maxpool2x2, relu
        conv = conv2d_fast(self.images[self.index], self.kernel)
        return {"conv": conv, "relu": relu(conv), "pooled": maxpool2x2(relu(conv))}

    def draw(self, fig=None):
        """Image, kernel, feature map, ReLU and max-pool, side by side."""
        import matplotlib.pyplot as plt

        from lessonlib.convviz import show_grid

        fig = fig or plt.figure(figsize=(13, 3))
        fig.clear()
        axes = fig.subplots(1, 5)
        out = self.outputs()
        show_grid(self.images[self.index], axes[0], self.titles[self.index], numbers=False, cmap="Greys")
        show_grid(self.kernel, axes[1], say("kernel"), numbers=True, cmap="RdBu_r")
        show_grid(out["conv"], axes[2], say("convolution"), numbers=False, cmap="RdBu_r")
        show_grid(out["relu"], axes[3], say("after ReLU"), numbers=False, cmap="viridis")
        show_grid(out["pooled"], axes[4], say("after 2x2 max-pool"), numbers=False, cmap="viridis")
        fig.tight_layout()
        return fig

    def widget(self):
        """A 3x3 grid of number boxes, preset buttons, an image chooser, and the live pictures."""
        import ipywidgets as w
        import matplotlib.pyplot as plt
        from IPython.display import display

        from lessonlib.convviz import KERNELS, kernel_name

        cells = [[w.FloatText(value=float(self.kernel[i, j]), step=0.5, layout=w.Layout(width="70px"))
                  for j in range(3)] for i in range(3)]
        presets = w.ToggleButtons(options=[(kernel_name(k), k) for k in KERNELS], value=None,   # labels: people's words
                                  style={"button_width": "90px"})
        chooser = w.Dropdown(options=[(t, i) for i, t in enumerate(self.titles)], value=self.index,
                             description=say("image"))
        out = w.Output()
        syncing = []

        def refresh():
            with out:
                out.clear_output(wait=True)
                fig = self.draw()
                display(fig)
                plt.close(fig)

        def on_cell(i, j):
            def handler(change):
                if not syncing:
                    self.set_cell(i, j, change["new"])
                    refresh()
            return handler

        def on_preset(change):
            if change["new"] is None:
                return
            self.set_kernel(change["new"])
            syncing.append(True)
            for i in range(3):
                for j in range(3):
                    cells[i][j].value = float(self.kernel[i, j])
            syncing.clear()
            refresh()

        def on_image(change):
            self.select(change["new"])
            refresh()

        for i in range(3):
            for j in range(3):
                cells[i][j].observe(on_cell(i, j), names="value")
        presets.observe(on_preset, names="value")
        chooser.observe(on_image, names="value")
        refresh()
        grid = w.GridBox([c for row in cells for c in row], layout=w.Layout(grid_template_columns="repeat(3, 80px)"))
        return w.VBox([w.HBox([grid, chooser]), presets, out])


class AugmentationExplorer:
    """Sliders for zoom, rotation, brightness, contrast and flipping over one image, updated live.

    State: `params` (a dict), `kind` ("side_on" or "top_down"), `image` (PIL); `transform()`
    builds the torchvision pipeline from them; `samples(n)` draws n augmented versions.

    Example:
        >>> explorer = AugmentationExplorer(data.trn_ds.get_image(0), sz=224)
        >>> explorer.widget()
        >>> explorer.set(rotation=45, kind="top_down"); explorer.samples(8)
    """

    DEFAULTS = {"zoom": 1.1, "rotation": 10.0, "brightness": 0.05, "contrast": 0.05, "flip_p": 0.5}
    RANGES = {"zoom": (1.0, 4.0), "rotation": (0.0, 180.0), "brightness": (0.0, 1.0), "contrast": (0.0, 1.0),
              "flip_p": (0.0, 1.0)}

    def __init__(self, image, sz=224, kind="side_on", seed=0):
        if isinstance(sz, bool) or not isinstance(sz, (int, np.integer)) or not 8 <= sz <= 2048:
            raise ValueError(problem("sz={sz!r}: the size of the previews in pixels, a whole number from 8 to 2048",
                                     sz=sz))
        self.image, self.sz, self.seed = image, int(sz), seed
        self.params = dict(self.DEFAULTS)
        self.kind = kind

    def set(self, kind=None, **params):
        """Change any of zoom, rotation, brightness, contrast, flip_p, and the kind of flips."""
        unknown = set(params) - set(self.DEFAULTS)
        if unknown:
            raise ValueError(problem("unknown settings {unknown}: use {DEFAULTS}",
                                     unknown=sorted(unknown), DEFAULTS=sorted(self.DEFAULTS)))
        if kind is not None:
            if kind not in ("side_on", "top_down"):
                raise ValueError(problem("kind must be 'side_on' (photos) or 'top_down' (satellite, microscope)"))
            self.kind = kind
        for k, v in params.items():
            lo, hi = self.RANGES[k]
            if not (isinstance(v, (int, float, np.number)) and lo <= float(v) <= hi):   # NaN fails this too
                raise ValueError(problem("{k}={v!r}: use a number from {lo:g} to {hi:g}", k=k, v=v, lo=lo, hi=hi))
        self.params.update({k: float(v) for k, v in params.items()})

    def transform(self):
        """The per-image training transform these settings describe."""
        from torchvision.transforms import v2

        from lessonlib.transforms import RandomDihedral
        p = self.params
        steps = [v2.ToImage(), v2.Resize(self.sz, antialias=True),
                 v2.RandomAffine(degrees=p["rotation"], scale=(1.0, max(1.0, p["zoom"])),
                                 interpolation=v2.InterpolationMode.BILINEAR),
                 v2.ColorJitter(brightness=p["brightness"], contrast=p["contrast"])]
        if self.kind == "side_on":
            steps.append(v2.RandomHorizontalFlip(p["flip_p"]))
        else:
            steps.append(v2.RandomApply([RandomDihedral()], p=p["flip_p"]))
        steps.append(v2.CenterCrop(self.sz))
        return v2.Compose(steps)

    def samples(self, n=8):
        """`n` augmented versions of the image (the same draws each time for the same settings)."""
        import torch
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(problem("n={n!r}: how many versions to draw, a whole number, 1 or more", n=n))
        from lessonlib.engine.snapshot import Snapshot
        with Snapshot(rng=True).kept():   # the student's random generators are left as they were
            torch.manual_seed(self.seed)
            tfm = self.transform()
            return [tfm(self.image) for _ in range(n)]

    def describe(self):
        """A sentence on whether these flips suit the kind of image."""
        if self.kind == "top_down":
            return say("top_down: all 8 rotations and mirror images. Right for satellite or microscope images, "
                       "which have no 'up'; wrong for a cat photo: cats are rarely upside down.")
        return say("side_on: mirror left to right only. Right for photos taken from the side, like cats and dogs.")

    def widget(self, n=8):
        """Sliders, a side_on/top_down switch, the explanation and a grid of augmented versions."""
        import ipywidgets as w
        import matplotlib.pyplot as plt
        from IPython.display import display

        from lessonlib.viz import plot_images

        sliders = {
            "zoom": w.FloatSlider(value=self.params["zoom"], min=1.0, max=2.0, step=0.05, description=say("max zoom")),
            "rotation": w.FloatSlider(value=self.params["rotation"], min=0, max=180, step=5, description=say("rotation (°)")),
            "brightness": w.FloatSlider(value=self.params["brightness"], min=0, max=0.8, step=0.05, description=say("brightness")),
            "contrast": w.FloatSlider(value=self.params["contrast"], min=0, max=0.8, step=0.05, description=say("contrast")),
            "flip_p": w.FloatSlider(value=self.params["flip_p"], min=0, max=1, step=0.1, description=say("flip prob.")),
        }
        kind = w.ToggleButtons(options=["side_on", "top_down"], value=self.kind)
        text = w.HTML()
        out = w.Output()

        def refresh(*_):
            self.set(kind=kind.value, **{k: s.value for k, s in sliders.items()})
            text.value = self.describe()
            with out:
                out.clear_output(wait=True)
                fig = plot_images(self.samples(n), cols=4, size=2.2)
                display(fig)
                plt.close(fig)

        for s in sliders.values():
            s.observe(refresh, names="value")
        kind.observe(refresh, names="value")
        refresh()
        return w.VBox([w.HBox([w.VBox(list(sliders.values())), w.VBox([kind, text])]), out])
