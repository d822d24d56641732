"""The lesson's Keras version of dogs vs cats, run for real in Keras 3 on the PyTorch backend.

Each framework's pipeline is written below as the code a user would type, in four stages:
data, model, train the head (body frozen), fine-tune (late body unfrozen). `compare()` runs
both on the same images, size, epochs and pretrained body, and measures each stage;
`user_code_stats()` counts the lines and the literal settings of each pipeline's code.

    >>> table = compare(PATH, sz=224, bs=32, head_epochs=2, fine_tune_epochs=1)

Keras is imported only inside these functions (`KERAS_BACKEND=torch` must be set before the
first `import keras`; TensorFlow is not needed).
"""
import ast
import inspect
import textwrap
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from lessonlib.engine.fonts import use_cjk_font
from lessonlib.engine.language import problem, say
from lessonlib.engine.runtime import seed_everything
from lessonlib.engine.settings import set_keras_backend
from lessonlib.engine.tables import Table

__all__ = ["KERAS", "KERAS_LOW_RATE", "KERAS_RESNET50", "LESSONLIB", "Pipeline", "bn_drift_with_training_false",
           "compare", "describe_code", "describe_comparison", "describe_drift", "describe_keras", "import_keras",
           "keras_body", "keras_resnet50_available", "pipeline_name", "plot_comparison", "run_pipeline", "show_code",
           "side_by_side", "user_code_stats"]


def import_keras():
    """Keras 3 on the PyTorch backend, with a clear error if Keras was already loaded with another one."""
    set_keras_backend()
    try:
        import keras
    except ImportError as e:
        raise ImportError(problem("Keras is not installed: pip install -r requirements.txt (it pins keras), or pip "
                                  "install lessonlib[keras]")) from e
    if keras.backend.backend() != "torch":
        raise RuntimeError(problem("Keras was imported with the {backend!r} backend; restart the kernel and run "
                                   "`%env KERAS_BACKEND=torch` before the first import",
                                   backend=keras.backend.backend()))
    return keras


def describe_keras(keras):
    """One line for people: the Keras version and the backend it runs on."""
    return say("Keras {version} on the {backend} backend", version=keras.__version__,
               backend=keras.backend.backend())


# ====================================================================== lessonlib: what a student types

def lessonlib_data(path, sz, bs, arch):
    from lessonlib import ImageClassifierData, tfms_from_model, transforms_side_on
    tfms = tfms_from_model(arch, sz, aug_tfms=transforms_side_on, max_zoom=1.2)
    return ImageClassifierData.from_paths(path, tfms=tfms, bs=bs)


def lessonlib_model(data, sz, arch):
    from lessonlib import ConvLearner
    return ConvLearner.pretrained(arch, data)


def lessonlib_train_head(learn, data, epochs):
    learn.fit(1e-2, epochs, cycle_len=1)


def lessonlib_fine_tune(learn, data, epochs):
    learn.freeze_to(1)      # the late body and the head train, as Keras's split_at does below
    learn.bn_freeze(True)
    learn.fit([1e-4, 1e-3, 1e-2], epochs, cycle_len=1)


# ====================================================================== Keras 3: what a Keras user types

def keras_data(path, sz, bs, arch):
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2
    resize = v2.Compose([v2.ToImage(), v2.Resize(sz), v2.CenterCrop(sz)])
    train_ds = ImageFolder(f"{path}/train", transform=resize)
    valid_ds = ImageFolder(f"{path}/valid", transform=resize)
    return DataLoader(train_ds, batch_size=bs, shuffle=True), DataLoader(valid_ds, batch_size=bs)


def keras_body(arch):
    """The adapter, not counted as the lesson's code: lessonlib's pretrained body as two Keras layers (early, late).

    So that both frameworks start from the same weights, the Keras model wraps the PyTorch body with
    `TorchModuleWrapper`. In the lesson's Keras code its place is one line, `ResNet50(weights="imagenet",
    include_top=False)`, which `keras_model` mirrors with one call to this function.
    """
    set_keras_backend(force=True)
    from keras import layers

    from lessonlib.engine.weights import create_body

    class TorchBody(layers.TorchModuleWrapper):
        def call(self, x, training=None):   # BatchNorm keeps its ImageNet statistics
            return super().call(x, training=False)

        def compute_output_shape(self, input_shape):   # Keras cannot infer it from a torch module
            with torch.no_grad():
                return (None, *self.module.eval()(torch.zeros(1, *input_shape[1:])).shape[1:])

    body = create_body(arch)   # the same pretrained body as lessonlib's
    return (TorchBody(nn.Sequential(body.normalize, body.early), name="early_body"),
            TorchBody(body.late, name="late_body"))


def keras_model(data, sz, arch):
    early_body, late_body = keras_body(arch)   # the pretrained body (the lesson: ResNet50(weights="imagenet"))
    import keras
    from keras import layers

    inputs = keras.Input((3, sz, sz))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.RandomFlip("horizontal", data_format="channels_first")(x)
    x = layers.RandomZoom(0.2, data_format="channels_first")(x)
    x = layers.RandomShear(x_factor=0.2, data_format="channels_first")(x)
    x = early_body(x)
    x = late_body(x)
    x = layers.GlobalAveragePooling2D(data_format="channels_first")(x)
    x = layers.Dense(1024, activation="relu")(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def keras_train_head(model, data, epochs):
    train_dl, valid_dl = data
    for layer in model.layers[:-2]:
        layer.trainable = False
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(train_dl, epochs=epochs, validation_data=valid_dl, verbose=2)


def keras_fine_tune(model, data, epochs):
    train_dl, valid_dl = data
    model.get_layer("late_body").trainable = True   # the lesson's split_at: train from here on
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(train_dl, epochs=epochs, validation_data=valid_dl, verbose=2)


def keras_fine_tune_low_rate(model, data, epochs):
    import keras
    train_dl, valid_dl = data
    model.get_layer("late_body").trainable = True
    optimizer = keras.optimizers.RMSprop(learning_rate=1e-5)   # rmsprop's default 1e-3 wrecks pretrained weights
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(train_dl, epochs=epochs, validation_data=valid_dl, verbose=2)


def keras_resnet50_model(data, sz, arch):
    """Keras's own ResNet50 with its ImageNet weights (a download of about 95 MB), instead of lessonlib's body."""
    set_keras_backend(force=True)
    import keras
    from keras import layers
    from keras.applications import ResNet50, resnet50

    base = ResNet50(weights="imagenet", include_top=False)
    inputs = keras.Input((3, sz, sz))
    x = layers.Permute((2, 3, 1))(inputs)   # Keras's own models want channels last
    x = layers.RandomFlip("horizontal")(x)
    x = layers.RandomZoom(0.2)(x)
    x = layers.RandomShear(x_factor=0.2)(x)
    x = layers.Lambda(resnet50.preprocess_input)(x)
    x = base(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(1024, activation="relu")(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def keras_resnet50_fine_tune(model, data, epochs):
    from keras import layers
    train_dl, valid_dl = data
    base = model.get_layer("resnet50")
    base.trainable = True
    for i, layer in enumerate(base.layers):   # in Keras 3 a BatchNorm layer with trainable=False runs
        layer.trainable = i >= 140 and not isinstance(layer, layers.BatchNormalization)   # in inference mode
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(train_dl, epochs=epochs, validation_data=valid_dl, verbose=2)


# ====================================================================== measuring the two side by side

@dataclass
class Pipeline:
    """One framework's user code, stage by stage."""
    name: str
    data: callable          # (path, sz, bs, arch) -> data
    model: callable         # (data, sz, arch) -> model or learner
    train_head: callable    # (model, data, epochs): trains, then the harness reads the validation accuracy
    fine_tune: callable     # (model, data, epochs): the same
    bn_handling: str        # what the code does so BatchNorm keeps its statistics when unfreezing

    @property
    def stages(self):
        return [self.data, self.model, self.train_head, self.fine_tune]


LESSONLIB = Pipeline("lessonlib", lessonlib_data, lessonlib_model, lessonlib_train_head, lessonlib_fine_tune,
                     "learn.bn_freeze(True): the body's BatchNorm layers stay in eval mode")
KERAS = Pipeline("Keras 3 (torch backend)", keras_data, keras_model, keras_train_head, keras_fine_tune,
                 "a TorchModuleWrapper subclass that always calls the body with training=False")
KERAS_LOW_RATE = Pipeline("Keras 3, fine-tune at 1e-5", keras_data, keras_model, keras_train_head,
                          keras_fine_tune_low_rate, KERAS.bn_handling)
KERAS_RESNET50 = Pipeline("Keras 3, keras.applications.ResNet50", keras_data, keras_resnet50_model,
                          keras_train_head, keras_resnet50_fine_tune,
                          "trainable=False on every BatchNormalization layer (Keras 3 then runs it in "
                          "inference mode)")
PIPELINES = (LESSONLIB, KERAS, KERAS_LOW_RATE, KERAS_RESNET50)


def _bn_handling_shown():
    """{a pipeline's `bn_handling`: how people read it}."""
    return {"learn.bn_freeze(True): the body's BatchNorm layers stay in eval mode":
            say("learn.bn_freeze(True): the body's BatchNorm layers stay in eval mode"),
            "a TorchModuleWrapper subclass that always calls the body with training=False":
            say("a TorchModuleWrapper subclass that always calls the body with training=False"),
            "trainable=False on every BatchNormalization layer (Keras 3 then runs it in inference mode)":
            say("trainable=False on every BatchNormalization layer (Keras 3 then runs it in inference mode)")}


def pipeline_name(name):
    """A pipeline's name (the table's row, `Pipeline.name`) as people read it; code keeps the English name."""
    names = {"Keras 3 (torch backend)": say("Keras 3 (torch backend)"),
             "Keras 3, fine-tune at 1e-5": say("Keras 3, fine-tune at 1e-5"),
             "Keras 3, keras.applications.ResNet50": say("Keras 3, keras.applications.ResNet50")}
    return names.get(name, name)


def describe_code(pipeline):
    """One line for people: how many lines and literal settings a pipeline's user code has, and the settings."""
    lines, settings = user_code_stats(pipeline)
    return say("{name}: {lines} lines, {n} settings: {settings}", name=pipeline_name(pipeline.name), lines=lines,
               n=len(settings), settings=settings)


def show_code(pipeline):
    """Print the user code of a pipeline's four stages (data, model, train the head, fine-tune)."""
    for fn in pipeline.stages:
        print(inspect.getsource(fn))


def _statements(fn):
    """(statements a user types in `fn`'s body, its source lines).

    Left out: the docstring, and lines that only unpack the stage's `data` argument (glue that
    splitting a script into stages adds; a one-piece script would not have it).
    """
    source = textwrap.dedent(inspect.getsource(fn))
    body = ast.parse(source).body[0].body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    glue = [s for s in body if isinstance(s, ast.Assign) and isinstance(s.value, ast.Name) and s.value.id == "data"]
    return [s for s in body if s not in glue], source.splitlines()


def user_code_stats(pipeline):
    """(lines of code, literal settings) of a pipeline's four stages.

    Lines: the non-blank, non-comment source lines of what the user types (docstrings and the
    stage glue left out, see `_statements`). Settings: the literal numbers, strings and
    booleans typed in (learning rates, layer sizes, optimizer, loss and augmentation names,
    folder names...): each is a choice the user had to make.
    """
    lines, settings = 0, []
    for fn in pipeline.stages:
        statements, source = _statements(fn)
        for s in statements:
            text = source[s.lineno - 1:s.end_lineno]
            lines += sum(1 for t in text if t.strip() and not t.strip().startswith("#"))
            settings += [n.value for n in ast.walk(s)
                         if isinstance(n, ast.Constant) and n.value is not None and not isinstance(n.value, bytes)]
    return lines, settings


def _val_accuracy(model):
    """The validation accuracy after the latest epoch, read from the learner or Keras's History."""
    if hasattr(model, "history") and isinstance(model.history, pd.DataFrame):
        return float(model.history["accuracy"].iloc[-1])
    return float(model.history.history["val_accuracy"][-1])


def _bn_buffers(model):
    """Every BatchNorm running mean and variance inside a lessonlib learner or a Keras model, as numpy."""
    found = []
    modules = [model.body] if hasattr(model, "body") else []   # a learner's body (its head has BatchNorm too)
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "module"):   # a TorchModuleWrapper
            modules.append(layer.module)
        for sub in [layer, *getattr(layer, "layers", [])]:
            for name in ("moving_mean", "moving_variance"):
                if hasattr(sub, name):   # a Keras BatchNormalization layer (its value is a torch tensor)
                    found.append(getattr(sub, name).value.detach().cpu().numpy().copy())
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                found += [m.running_mean.detach().cpu().numpy().copy(), m.running_var.detach().cpu().numpy().copy()]
    return found


def _bn_change(before, after):
    return max((float(np.abs(a - b).max()) for a, b in zip(before, after)), default=0.0)


def run_pipeline(pipeline, path, sz, bs, head_epochs, fine_tune_epochs, arch="resnet50", seed=42):
    """Run one pipeline's four stages; return what was measured as a dict (one row of the table)."""
    seed_everything(seed)
    start = time.perf_counter()
    data = pipeline.data(path, sz, bs, arch)
    model = pipeline.model(data, sz, arch)
    setup_s = time.perf_counter() - start
    bn_start = _bn_buffers(model)
    start = time.perf_counter()
    pipeline.train_head(model, data, head_epochs)
    head_s = (time.perf_counter() - start) / head_epochs
    head_acc = _val_accuracy(model)
    bn_head = _bn_buffers(model)
    start = time.perf_counter()
    pipeline.fine_tune(model, data, fine_tune_epochs)
    tune_s = (time.perf_counter() - start) / fine_tune_epochs
    tuned_acc = _val_accuracy(model)
    lines, settings = user_code_stats(pipeline)
    return {
        "framework": pipeline.name,
        "lines of user code": lines,
        "settings chosen": len(settings),
        "data + model (s)": round(setup_s, 1),
        "head: time/epoch (s)": round(head_s, 1),
        "head: val accuracy": round(float(head_acc), 3),
        "fine-tune: time/epoch (s)": round(tune_s, 1),
        "fine-tune: val accuracy": round(float(tuned_acc), 3),
        "BatchNorm stats moved": _bn_change(bn_start, bn_head) > 0 or _bn_change(bn_head, _bn_buffers(model)) > 0,
        "BatchNorm when unfreezing": pipeline.bn_handling,
    }


def keras_resnet50_available():
    """True when Keras can load its ResNet50 ImageNet weights (cached, or downloadable now); else says why."""
    keras = import_keras()
    try:
        keras.applications.ResNet50(weights="imagenet", include_top=False)
        return True
    except Exception as e:   # get_file wraps URLError/HTTPError in a plain Exception
        reason = textwrap.shorten(str(e).splitlines()[0] if str(e) else type(e).__name__, 90)
        print(problem("keras.applications.ResNet50: its ImageNet weights cannot be loaded here ({reason}); the Keras "
                      "run uses lessonlib's pretrained body instead.", reason=reason))
        return False


def compare(path, sz=224, bs=32, head_epochs=2, fine_tune_epochs=1, arch="resnet50", keras_resnet50=None):
    """Run lessonlib's and Keras's pipelines on the same data, size and epochs; one row each.

    Rows: lessonlib; the lesson's Keras code (rmsprop at its default rate throughout); the same with
    fine-tuning at the rate Keras's transfer-learning guide uses (1e-5); Keras's own ResNet50.

    Args:
        path: an image folder with train/ and valid/ (two classes).
        sz, bs: image size and mini-batch size, the same for both.
        head_epochs, fine_tune_epochs: epochs with the body frozen, then with the late body unfrozen.
        arch: the pretrained body both use (offline: the announced efficientnet_lite0 fallback).
        keras_resnet50: also run Keras's own ResNet50 (None: when its weights are available).

    Example:
        >>> compare(PATH, sz=224, head_epochs=2, fine_tune_epochs=1)
    """
    import_keras()
    pipelines = [LESSONLIB, KERAS, KERAS_LOW_RATE]
    if keras_resnet50 is None:
        keras_resnet50 = keras_resnet50_available()
    if keras_resnet50:
        pipelines.append(KERAS_RESNET50)
    rows = [run_pipeline(p, path, sz, bs, head_epochs, fine_tune_epochs, arch) for p in pipelines]
    labels = {"framework": say("framework"), "lines of user code": say("lines of user code"),
              "settings chosen": say("settings chosen"), "data + model (s)": say("data + model (s)"),
              "head: time/epoch (s)": say("head: time/epoch (s)"), "head: val accuracy": say("head: val accuracy"),
              "fine-tune: time/epoch (s)": say("fine-tune: time/epoch (s)"),
              "fine-tune: val accuracy": say("fine-tune: val accuracy"),
              "BatchNorm stats moved": say("BatchNorm stats moved"),
              "BatchNorm when unfreezing": say("BatchNorm when unfreezing")}
    cells = {"BatchNorm stats moved": {True: say("True"), False: say("False")},
             "BatchNorm when unfreezing": _bn_handling_shown()}
    return Table(pd.DataFrame(rows).set_index("framework"), labels=labels,   # code reads the English names
                 cells=cells)


def side_by_side(table):
    """`compare`'s table turned on its side (one column per framework), as people read it: its labels, cells and
    the frameworks' names in the reader's language. For display only: code reads `table`."""
    shown = table.shown() if isinstance(table, Table) else table
    return shown.rename(index=pipeline_name).T


def describe_comparison(table):
    """Two lines for people on `compare`'s table: where the lesson's Keras code ends up after fine-tuning (and with
    the gentler rate), and how many times the lines, the settings and the head's epoch time of lessonlib's."""
    ours, theirs, gentle = table.loc[LESSONLIB.name], table.loc[KERAS.name], table.loc[KERAS_LOW_RATE.name]
    return "\n".join([
        say("after fine-tuning with rmsprop's default rate the lesson's Keras code is at {tuned:.3f} validation "
            "accuracy (head alone: {head:.3f}); at 1e-5: {gentle:.3f}", tuned=theirs["fine-tune: val accuracy"],
            head=theirs["head: val accuracy"], gentle=gentle["fine-tune: val accuracy"]),
        say("Keras needs {lines:.1f}x the lines and {settings:.1f}x the settings; its head epoch takes {time:.2f}x "
            "lessonlib's time.", lines=theirs["lines of user code"] / ours["lines of user code"],
            settings=theirs["settings chosen"] / ours["settings chosen"],
            time=theirs["head: time/epoch (s)"] / ours["head: time/epoch (s)"])])


def plot_comparison(table):
    """Three bar charts of `compare`'s table, one group of bars per framework: what you type (lines, settings),
    seconds per epoch (head, fine-tuning) and validation accuracy (head, fine-tuning); text in the reader's
    language. Returns the figure."""
    import matplotlib.pyplot as plt
    use_cjk_font()   # text in the reader's language
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    names = [pipeline_name(n).replace(" (torch backend)", "\n(torch backend)").replace(", ", ",\n")
             .replace("（", "\n（").replace("，", "，\n") for n in table.index]
    for ax, cols, title in [
        (axes[0], ["lines of user code", "settings chosen"], say("what you type")),
        (axes[1], ["head: time/epoch (s)", "fine-tune: time/epoch (s)"], say("seconds per epoch")),
        (axes[2], ["head: val accuracy", "fine-tune: val accuracy"], say("validation accuracy")),
    ]:
        pd.DataFrame(table[cols]).rename(columns=table.labels or {}).set_axis(names).plot.bar(ax=ax, rot=0,
                                                                                            title=title)
        ax.legend(fontsize=8)
    axes[2].set_ylim(0.4, 1.0)
    fig.tight_layout()
    return fig


def describe_drift(drift, version, steps):
    """Lines for people on what `bn_drift_with_training_false` measured (`drift`, after `steps` mini-batches, with
    Keras `version`): whether this Keras still has the BatchNorm trap."""
    measured = say("Keras {version}: largest change of a BatchNorm running statistic after {steps} mini-batches: "
                   "{drift:.4f}", version=version, steps=steps, drift=drift)
    if drift > 0:
        verdict = say("This Keras still has the trap: with training=False alone, fit() updates the torch body's "
                      "BatchNorm.")
    else:
        verdict = say("This Keras keeps the torch body's BatchNorm fixed with training=False: the trap is fixed in "
                      "this version. The TorchBody wrapper below is then a belt and braces; older versions need it.")
    return f"{measured}\n{verdict}"


def bn_drift_with_training_false(data, arch, steps=3):
    """How far BatchNorm running means move when Keras's guide is followed literally on a torch body.

    Builds head training with a plain `TorchModuleWrapper` called with `training=False` (the Keras
    transfer-learning guide's advice), body frozen, trains `steps` mini-batches and returns the largest
    change of any running mean or variance. Keras's `fit` passes training=True into every layer call,
    overriding the False given while building the model (keras-team/keras#20285), and a frozen
    TorchModuleWrapper does not switch its module to eval mode: the statistics drift.
    """
    keras = import_keras()
    from keras import layers

    from lessonlib.engine.weights import create_body

    train_dl, _ = data
    shape = tuple(next(iter(train_dl))[0].shape[1:])
    body = create_body(arch)
    module = nn.Sequential(body.normalize, body.early, body.late)
    with torch.no_grad():
        out_shape = (None, *module.eval()(torch.zeros(1, *shape)).shape[1:])
    inputs = keras.Input(shape)
    x = layers.Rescaling(1 / 255)(inputs)
    wrapped = layers.TorchModuleWrapper(module, output_shape=out_shape)
    x = wrapped(x, training=False)
    x = layers.GlobalAveragePooling2D(data_format="channels_first")(x)
    model = keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    wrapped.trainable = False
    model.compile(optimizer="rmsprop", loss="binary_crossentropy")
    before = _bn_buffers(model)
    model.fit(train_dl, epochs=1, steps_per_epoch=steps, verbose=0)
    return _bn_change(before, _bn_buffers(model))
