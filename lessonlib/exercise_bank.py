"""The course's exercises and predictions: what each asks, its hint, its worked solution and how its answer is
checked. `lessonlib.exercises` is the mechanism that asks, checks and reveals them (`check`, `solution`, `guess`,
`reveal`); this module is only what they say.

To add an exercise: write its checker, `(answer, **context) -> bool`, then `EXERCISES["NN-name"] = Exercise(prompt,
hint, solution, checker)` right below it, NN being its lesson. `solution` is code that sets `answer` from the names
the checker receives; the tests run every solution through its checker. A "predict before you run" question is
the same below: `PREDICTIONS["NN-name"] = Prediction(question, measure, agrees, why)`. Add each hint, question
and explanation to `lessonlib/locale/zh.json` too (`python scripts/messages.py` checks it). The order of
`EXERCISES` is the order of the class report (`python -m lessonlib class-report`): add new ones at the end.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["EXERCISES", "Exercise", "PREDICTIONS", "Prediction"]


@dataclass(frozen=True)
class Exercise:
    prompt: str
    hint: str
    solution: str            # code that sets `answer`, using the names the checker receives
    checker: callable        # (answer, **context) -> bool


EXERCISES = {}   # {key: Exercise}


def _count_dogs(answer, path):
    return answer == len([p for p in (Path(path) / "train" / "dogs").iterdir() if p.is_file()])


EXERCISES["00-count-dogs"] = Exercise(
    "How many photos of dogs are in the training set?",
    "Each class has its own folder: count the files in PATH/'train'/'dogs' "
    "(`Path.iterdir()` lists a folder; `len(list(...))` counts).",
    "answer = len(list((PATH / 'train' / 'dogs').iterdir()))",
    _count_dogs)


def _valid_cats(answer, path):
    return answer is not None and Path(answer).resolve() == (Path(path) / "valid" / "cats").resolve()


EXERCISES["00-valid-cats"] = Exercise(
    "You took a new photo of a cat and want to use it for validation. Which folder must it go into?",
    "Validation images live under PATH/'valid', one folder per class, named exactly like the "
    "class folders under PATH/'train'.",
    "answer = PATH / 'valid' / 'cats'",
    _valid_cats)


def _batches_per_epoch(answer):
    try:
        return tuple(int(v) for v in answer) == (13, 32)
    except TypeError:   # not a pair
        return False


EXERCISES["01-batches-per-epoch"] = Exercise(
    "Predict without running anything: 800 training photos in mini-batches of 64. How many mini-batches make one "
    "epoch, and how many photos are in the last one? Answer a pair.",
    "An epoch sees every training photo once, 64 at a time; photos left over after the full mini-batches still "
    "make a mini-batch of their own.",
    "import math\nanswer = (math.ceil(800 / 64), 800 - (800 // 64) * 64)",
    _batches_per_epoch)


def _error_rate(answer, log_preds, y):
    wrong = float(np.mean(np.argmax(log_preds, axis=1) != np.asarray(y)))
    return answer is not None and abs(float(answer) - wrong) < 1e-6


EXERCISES["01-error-rate"] = Exercise(
    "What fraction of the validation images does the model get wrong?",
    "The prediction is the class with the highest log-probability: np.argmax(log_preds, axis=1). "
    "Compare it with y and take the mean of the mistakes (it is 1 - accuracy).",
    "answer = float(np.mean(np.argmax(log_preds, axis=1) != y))",
    _error_rate)


def _most_wrong(answer, log_preds, y):
    log_preds, y = np.asarray(log_preds), np.asarray(y)
    wrong = np.flatnonzero(log_preds.argmax(1) != y)
    if len(wrong) == 0:
        return int(answer) == -1
    return int(answer) == int(wrong[np.argmax(log_preds[wrong].max(1))])


EXERCISES["01-most-wrong"] = Exercise(
    "Which validation image (its index) is the model most confidently wrong about? -1 if it makes "
    "no mistake.",
    "Among the images where argmax(log_preds) != y, take the one whose highest log-probability is "
    "largest: np.flatnonzero finds the mistakes, np.argmax picks the most confident.",
    "wrong = np.flatnonzero(log_preds.argmax(1) != y)\n"
    "answer = int(wrong[np.argmax(log_preds[wrong].max(1))]) if len(wrong) else -1",
    _most_wrong)


def _one_step(answer):
    import torch
    if answer is None:
        return False
    w = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)   # one step of torch's SGD on f(w) = w**2
    (w ** 2).backward()
    torch.optim.SGD([w], lr=float(answer)).step()
    return abs(float(w.detach())) < 1e-9


EXERCISES["02-one-step"] = Exercise(
    "Gradient descent on f(w) = w**2 starting at w = 1: which learning rate reaches the bottom (w = 0) "
    "in exactly one step?",
    "One step is w - lr * f'(w) with f'(w) = 2w. Which lr makes that step end exactly at 0 when it starts "
    "from w = 1?",
    "answer = 0.5",
    _one_step)


def _within(answer, target, factor=1.5):
    return answer is not None and float(answer) > 0 and target / factor <= float(answer) <= target * factor


def _min_lr(answer, lrf):
    return _within(answer, lrf.min_loss_lr)


EXERCISES["02-min-lr"] = Exercise(
    "Read the finder's result: at which learning rate is the smoothed loss lowest?",
    "lrf.lrs holds the rates and lrf.smoothed the smoothed losses, one per mini-batch: find the index "
    "of the smallest smoothed loss with np.argmin and look up that rate.",
    "answer = lrf.lrs[np.argmin(lrf.smoothed)]",
    _min_lr)


def _notes_rule(answer, lrf):
    from lessonlib.lr_finder import power_of_ten_below   # the finder's own rule, on the minimum it read
    return _within(answer, power_of_ten_below(lrf.min_loss_lr), factor=1.01)


EXERCISES["02-notes-rule"] = Exercise(
    "Apply the notes' rule to the same curve: which learning rate do you pick?",
    "Write the rate at the lowest point of the smoothed curve (exercise 2) as a × 10^k, with a between 1 and 10; "
    "the notes' rule picks 10^(k-1). A minimum at 0.35 = 3.5 × 10^-1 gives 1e-2.",
    "answer = 10.0 ** (np.floor(np.log10(lrf.min_loss_lr)) - 1)",
    _notes_rule)


def _satellite_set(answer):
    from lessonlib.transforms import transforms_top_down
    return answer is transforms_top_down


EXERCISES["03-satellite"] = Exercise(
    "Which of transforms_basic, transforms_side_on and transforms_top_down fits satellite tiles?",
    "A satellite tile has no 'up': turned by 90° or mirrored, it is still a valid tile. Which set uses "
    "all eight of those symmetries?",
    "from lessonlib.transforms import transforms_top_down\nanswer = transforms_top_down",
    _satellite_set)


def _overfits_more(answer, runs):
    """`runs`: {name: [history of each seed]}."""
    gaps = {name: float(np.mean([h.val_loss.iloc[-1] - h.trn_loss.iloc[-1] for h in hs])) for name, hs in runs.items()}
    return answer == max(gaps, key=gaps.get)


EXERCISES["03-overfitting"] = Exercise(
    "Which of the two runs above overfits more: \"no augmentation\" or \"augmentation\"? Read their last "
    "epoch's training and validation loss.",
    "Overfitting is the validation loss staying well above the training loss: compare "
    "val_loss - trn_loss at the last epoch, averaged over the seeds' histories in runs[name], for both names.",
    "gaps = {name: np.mean([h.val_loss.iloc[-1] - h.trn_loss.iloc[-1] for h in hs]) for name, hs in runs.items()}\n"
    "answer = max(gaps, key=gaps.get)",
    _overfits_more)


def _zoom_20(answer):
    return (hasattr(answer, "max_zoom") and abs(answer.max_zoom - 1.2) < 1e-9 and answer.augments
            and answer.sz >= 32)


EXERCISES["03-zoom"] = Exercise(
    "Build transforms for `arch` at size `sz` with the side-on augmentations and up to 20% zoom.",
    "tfms_from_model takes aug_tfms= (a list such as transforms_side_on) and max_zoom= (1.2 means 20%).",
    "from lessonlib import tfms_from_model, transforms_side_on\n"
    "answer = tfms_from_model('resnet34', 224, aug_tfms=transforms_side_on, max_zoom=1.2)",
    _zoom_20)


def _sgdr_epochs(answer):
    from lessonlib.schedules import sgdr_epochs
    return answer == sgdr_epochs(3, cycle_len=1, cycle_mult=2)


EXERCISES["04-sgdr-epochs"] = Exercise(
    "How many epochs does learn.fit(1e-2, 3, cycle_len=1, cycle_mult=2) train?",
    "The 3 counts cycles, not epochs. How long is each cycle, given cycle_len and cycle_mult?",
    "answer = 1 + 2 + 4",
    _sgdr_epochs)


def _mid_cycle(answer):
    from lessonlib.schedules import schedule_rates, sgdr
    rates = schedule_rates(lambda opt: sgdr(opt, 100, cycle_len=1), 100, lr=1e-2)   # 100 mini-batches, one epoch
    return answer is not None and abs(float(answer) - rates[50]) < 1e-9


EXERCISES["04-mid-cycle"] = Exercise(
    "With learn.fit(1e-2, 1, cycle_len=1), what is the learning rate half way through the epoch?",
    "Within a cycle the rate follows half a cosine, from lr at its start down to 0 at its end. Draw it: which"
    " value does it pass exactly half way?",
    "answer = 1e-2 * (1 + np.cos(np.pi / 2)) / 2",
    _mid_cycle)


def _precompute_off(answer, learn):
    return answer is False and learn.precompute is False and learn.data.tfms.augments


EXERCISES["04-precompute-off"] = Exercise(
    "Write the one line that makes the augmentations take effect, then set `answer = learn.precompute`.",
    "While precompute is on, the head trains on activations computed once from un-augmented images. "
    "Switch it off with the learner's precompute attribute.",
    "learn.precompute = False\nanswer = learn.precompute",
    _precompute_off)


def _differential_rates(answer, head_lr=3e-3):
    from lessonlib.training import group_rates
    rates = np.asarray(group_rates([None] * 3, answer))
    return np.allclose(rates, head_lr * np.array([0.01, 0.1, 1.0]))


EXERCISES["05-differential-rates"] = Exercise(
    "The finder suggests 3e-3 for the head. Give three learning rates for [early body, late body, head], each "
    "group ten times smaller than the next.",
    "A list or array of three numbers, smallest first: the early body changes least. Start from the head's rate "
    "and divide by ten for each group before it.",
    "answer = [3e-5, 3e-4, 3e-3]",
    _differential_rates)


TTA_VIEWS = [0.4, 0.9, 0.8, 0.45, 0.3]   # one photo's dog probability: the photo as it is, then its 4 augmented views


def _tta_accuracy(answer):
    return (answer is not None and not isinstance(answer, (bool, str))
            and abs(float(answer) - float(np.mean(TTA_VIEWS))) < 0.005)


EXERCISES["05-tta-accuracy"] = Exercise(
    "Predict before you compute: the photo as it is gets a dog probability of 0.4, its 4 augmented views 0.9, 0.8, "
    "0.45 and 0.3. What dog probability does TTA give it?",
    "How many views does TTA show the model of this photo, and how does the lesson's TTA cell combine what "
    "the model says about them?",
    "answer = np.mean([0.9, 0.8, 0.4, 0.45, 0.3])",
    _tta_accuracy)


def _bn_statistics_update(learn):
    """Whether training `learn` as it is now updates any of its body's BatchNorm statistics: two mini-batches are
    trained (then everything is put back) while each BatchNorm layer reports whether it was in training mode."""
    from lessonlib.models import batchnorm_layers
    seen = []
    hooks = [m.register_forward_pre_hook(lambda m, args: seen.append(m.training and m.track_running_stats))
             for m in batchnorm_layers(learn.body)]
    try:
        learn.try_lr(1e-5, num_it=2)
    finally:
        for hook in hooks:
            hook.remove()
    return any(seen)


def _bn_frozen(answer, learn):
    return isinstance(answer, bool) and answer == _bn_statistics_update(learn)


EXERCISES["05-bn-freeze"] = Exercise(
    "Your learner is unfrozen, with learn.bn_freeze(True): do the running means of its body's BatchNorm "
    "layers change while it trains? Measure it on `learn`, answer True or False.",
    "bn_freeze keeps the body's BatchNorm layers in eval mode: they normalise with the ImageNet "
    "statistics and do not update them, while their weights still train. Compare "
    "[m.running_mean.clone() for m in learn.body.modules() if hasattr(m, 'running_mean')] before and after "
    "a short training.",
    "import torch\n"
    "means = lambda: [m.running_mean.clone() for m in learn.body.modules() if hasattr(m, 'running_mean')]\n"
    "before = means()\n"
    "x, _ = next(iter(learn.data.trn_dl))\n"
    "learn.model.train()   # as fit() does at the start of every epoch\n"
    "with torch.no_grad():\n"
    "    learn.model(x.to(learn.policy.device))   # a forward pass in training mode is what updates them\n"
    "learn.model.eval()\n"
    "answer = any(not torch.equal(a, b) for a, b in zip(before, means()))",
    _bn_frozen)


def _unfrozen_weights(answer, learn):
    return answer is not None and int(answer) == sum(p.numel() for p in learn.body.parameters())


EXERCISES["05-unfreeze"] = Exercise(
    "Before unfreeze() only the head trained. How many weights (numbers, not tensors) did learn.unfreeze() "
    "add to those that train?",
    "unfreeze() lets every layer group train: the early and late body. Add up p.numel() for the parameters "
    "of learn.body.",
    "answer = sum(p.numel() for p in learn.body.parameters())",
    _unfrozen_weights)


def _updates_per_epoch(answer, data):
    n = len(data.trn_ds)
    return answer is not None and tuple(answer) == (-(-n // 8), 1)


EXERCISES["02-updates-per-epoch"] = Exercise(
    "One epoch over `data`'s training photos makes len(data.trn_dl) weight updates with mini-batches of "
    "data.bs. How many would it make with mini-batches of 8, and with the whole training set as one batch? "
    "Answer a pair, e.g. (100, 1).",
    "One update per mini-batch: the number of photos divided by the batch size, rounded up (the last "
    "mini-batch may be smaller). The whole set as one batch: one update per epoch.",
    "import math\nanswer = (math.ceil(len(data.trn_ds) / 8), 1)",
    _updates_per_epoch)


def _dense_by_hand(answer):
    from lessonlib.convviz import dense
    activations = np.array([[1.0, 0.0], [2.0, 3.0]])
    weights = np.array([[[0.5, 1.0], [0.0, -1.0]]])   # one output: one weight per activation
    return abs(float(answer) - float(dense(activations, weights)[0])) < 1e-9


EXERCISES["06-dense-by-hand"] = Exercise(
    "A fully connected layer with one output sees the activations [[1, 0], [2, 3]] with the weights "
    "[[0.5, 1], [0, -1]]. What does it output?",
    "Multiply each activation by the weight in the same place and add everything up: a weight for every "
    "activation, as in the spreadsheet's last layer.",
    "answer = 1 * 0.5 + 0 * 1 + 2 * 0 + 3 * -1",
    _dense_by_hand)


def _submission_rows(answer, data):
    return int(answer) == len(data.test_ds)


EXERCISES["07-submission-rows"] = Exercise(
    "How many rows does the submission file have (not counting its header)?",
    "One row per test image: count the images of data.test_ds.",
    "answer = len(data.test_ds)",
    _submission_rows)


def _test_dog_probability(answer, data, probs, name="0001.jpg"):
    i = [f.name for f in data.test_ds.fnames].index(name)
    return abs(float(answer) - float(np.asarray(probs)[i, data.classes.index("dogs")])) < 1e-6


EXERCISES["07-test-dog"] = Exercise(
    "What probability does the model give that the test image 0001.jpg is a dog? Use `probs` (TTA "
    "probabilities, one row per test image, in the order of data.test_ds.fnames).",
    "Find the row of 0001.jpg with [f.name for f in data.test_ds.fnames].index(...), and the column of "
    "'dogs' with data.classes.index('dogs').",
    "i = [f.name for f in data.test_ds.fnames].index('0001.jpg')\n"
    "answer = probs[i, data.classes.index('dogs')]",
    _test_dog_probability)


def _valid_count(answer):
    """A pair of photo counts: whole numbers, 5.0 as well as 5 (np.round gives floats); 4.6 is not a count of
    photos, and int() would quietly cut 5.4 to 5, so it is not used."""
    try:   # sort_photos(valid_pct=0.2): round(0.2 * 23) = 5, round(0.2 * 12) = 2 (test_exercises runs sort_photos)
        counts = [v for v in answer]
    except TypeError:   # not a pair
        return False
    return (len(counts) == 2 and all(not isinstance(v, (bool, str)) and isinstance(v, (int, float, np.number))
                                     and float(v).is_integer() for v in counts)
            and tuple(int(v) for v in counts) == (5, 2))


EXERCISES["10-valid-count"] = Exercise(
    "Predict: sort_photos keeps 20% of each class apart for validation. One class has 23 photos, another 12: how "
    "many of each go to valid? Answer a pair.",
    "20% of a class is rarely a whole number of photos, and a photo cannot be split. What would you do with "
    "the fraction? Then test your rule on your own folders (the exercise's second half).",
    "answer = (round(0.2 * 23), round(0.2 * 12))",
    _valid_count)


def _worst_photo(answer, files, log_preds, y):
    p_true = np.exp(np.asarray(log_preds))[np.arange(len(y)), np.asarray(y)]
    return answer is not None and Path(str(answer)) == Path(files[int(np.argmin(p_true))])


EXERCISES["10-worst-photo"] = Exercise(
    "Which validation photo does the model find hardest: the one where it gives its true class the lowest "
    "probability? Give its file (an item of `files`).",
    "`np.exp(log_preds)` are the probabilities; pick each photo's true class with "
    "`probs[np.arange(len(y)), y]`, then `np.argmin` finds the lowest.",
    "p_true = np.exp(log_preds)[np.arange(len(y)), y]\nanswer = files[int(np.argmin(p_true))]",
    _worst_photo)


def _f2_by_hand(answer):
    from lessonlib.metrics import fbeta
    tags = ["clear", "primary", "water"]
    truth, predicted = [["clear", "primary"]], [["clear", "water"]]
    onehot = lambda rows: np.array([[t in row for t in tags] for row in rows], dtype=float)
    return answer is not None and abs(float(answer) - fbeta(onehot(predicted), onehot(truth), beta=2, thresh=0.5)) < 1e-6


EXERCISES["09-f2-by-hand"] = Exercise(
    "A chip has the tags `clear primary`; the model predicts `clear water`. What is its F2?",
    "Precision = right predicted tags / predicted tags; recall = right predicted tags / true tags. "
    "F2 = 5 * precision * recall / (4 * precision + recall).",
    "precision, recall = 1 / 2, 1 / 2\nanswer = 5 * precision * recall / (4 * precision + recall)",
    _f2_by_hand)


def _lower_threshold(answer):
    return isinstance(answer, str) and answer.strip().lower().strip(")") == "b"


EXERCISES["09-best-threshold"] = Exercise(
    "Predict: you lower the threshold from 0.2 to 0.05. What happens to recall and precision? a) both rise  "
    "b) recall rises, precision falls  c) recall falls, precision rises",
    "A lower threshold predicts more tags. Do more predicted tags find more of the true ones? Are the extra ones "
    "as often right as the tags the model was sure of?",
    'answer = "b"',
    _lower_threshold)


def _upper_side_kernel(answer):
    from lessonlib.convviz import conv2d_valid, relu
    try:
        k = np.asarray(answer, dtype=float)
    except (TypeError, ValueError):
        return False
    if k.shape != (3, 3):
        return False
    square = np.zeros((10, 10))
    square[3:7, 3:7] = 1
    fired = np.flatnonzero(relu(conv2d_valid(square, k)).sum(axis=1) > 1e-9)
    return len(fired) > 0 and set(fired.tolist()) <= {1, 2}   # only where dark lies above bright


EXERCISES["06-upper-side"] = Exercise(
    "Write a 3x3 kernel that fires (is positive after ReLU) along the upper side of bright shapes, "
    "where dark pixels lie above bright ones, and nowhere else.",
    "Put negative weights on the top row (dark there is good), positive ones on the bottom row (bright "
    "there is good), zeros in the middle. Try it on a bright square with convviz.conv2d_valid.",
    "answer = [[-1, -1, -1], [0, 0, 0], [1, 1, 1]]",
    _upper_side_kernel)


def _cell_by_hand(answer):
    from lessonlib.convviz import conv2d_valid, kernel
    patch = np.array([[0, 1, 1], [0, 1, 1], [0, 0, 1]], dtype=float)
    return answer is not None and abs(float(answer) - conv2d_valid(patch, kernel("left_edge"))[0, 0]) < 1e-9


EXERCISES["06-cell-by-hand"] = Exercise(
    "The 3x3 patch [[0, 1, 1], [0, 1, 1], [0, 0, 1]] meets the left_edge kernel [[1, 0, -1]] * 3. "
    "What is the output cell, before ReLU?",
    "Multiply cell by cell and add up: each row gives 1 * (left) + 0 * (middle) - 1 * (right).",
    "answer = (0 - 1) + (0 - 1) + (0 - 1)",
    _cell_by_hand)


def _pool_shape(answer):
    from lessonlib.convviz import spreadsheet_filters, spreadsheet_forward
    filters1, filters2, _ = spreadsheet_filters()
    shape = spreadsheet_forward(np.zeros((32, 32)), filters1, filters2, np.zeros((2, 14, 14)))["maxpool"].shape
    try:
        return tuple(answer) == tuple(shape)
    except TypeError:   # not a tuple
        return False


EXERCISES["06-maxpool-shape"] = Exercise(
    "Predict: the spreadsheet's network gets a 32x32 image instead of 28x28. What shape comes out of its 2x2 "
    "max-pool? Answer a tuple.",
    "Follow the spreadsheet's 28x28 image through its layers first, and check that you get the shape the "
    "lesson shows; then do the same from 32x32.",
    "answer = (2, (32 - 2 - 2) // 2, (32 - 2 - 2) // 2)",
    _pool_shape)


def _keras_freeze_100(answer):
    from lessonlib.keras_compare import import_keras
    base = import_keras().applications.ResNet50(weights=None, include_top=False)
    training = sum(int(np.prod(w.shape)) for layer in base.layers[100:] for w in layer.trainable_weights)
    return answer is not None and int(answer) == training


EXERCISES["08-keras-freeze-100"] = Exercise(
    "Build keras.applications.ResNet50(weights=None, include_top=False), freeze its first 100 layers and "
    "report how many weights (numbers, not tensors) still train.",
    "Set layer.trainable = False for each layer in base.layers[:100]; then add up the sizes of "
    "base.trainable_weights: int(np.prod(w.shape)) for each w.",
    "from lessonlib.keras_compare import import_keras\n"
    "keras = import_keras()\n"
    "base = keras.applications.ResNet50(weights=None, include_top=False)\n"
    "for layer in base.layers[:100]:\n"
    "    layer.trainable = False\n"
    "answer = sum(int(np.prod(w.shape)) for w in base.trainable_weights)",
    _keras_freeze_100)


def _sgd_fine_tune(answer):
    """Run the student's fine-tune stage on a tiny Keras model with a `late_body` layer; is it SGD, momentum 0.9?"""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from lessonlib.keras_compare import import_keras
    if not callable(answer):
        return False
    keras = import_keras()
    inputs = keras.Input((4,))
    x = keras.layers.Dense(2, name="late_body")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    g = torch.Generator().manual_seed(0)
    batches = DataLoader(TensorDataset(torch.randn(8, 4, generator=g), torch.randint(0, 2, (8, 1), generator=g).float()),
                         batch_size=4)
    answer(model, (batches, batches), 1)
    optimizer = model.optimizer
    return isinstance(optimizer, keras.optimizers.SGD) and abs(float(optimizer.momentum) - 0.9) < 1e-6


EXERCISES["08-keras-sgd"] = Exercise(
    "Write `my_fine_tune(model, data, epochs)`, the Keras fine-tune stage with SGD and momentum 0.9 instead of "
    "rmsprop, and pass the function itself as the answer.",
    "Copy keras_compare.keras_fine_tune_low_rate and change one line: "
    "optimizer = keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9). Keep model.compile(...) and "
    "model.fit(...).",
    "from lessonlib.keras_compare import import_keras\n"
    "keras = import_keras()\n\n"
    "def my_fine_tune(model, data, epochs):\n"
    "    train_dl, valid_dl = data\n"
    "    model.get_layer('late_body').trainable = True\n"
    "    optimizer = keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9)\n"
    "    model.compile(optimizer=optimizer, loss='binary_crossentropy', metrics=['accuracy'])\n"
    "    model.fit(train_dl, epochs=epochs, validation_data=valid_dl, verbose=2)\n\n"
    "answer = my_fine_tune",
    _sgd_fine_tune)


def _freeze_to_two(answer):
    from lessonlib.learner import GROUP_NAMES
    trains = {"a": ["head"], "b": ["late body", "head"], "c": list(GROUP_NAMES)}
    return isinstance(answer, str) and trains.get(answer.strip().lower().strip(")")) == list(GROUP_NAMES[2:])


EXERCISES["08-freeze-to"] = Exercise(
    "Predict: after learn.freeze_to(2), which layer groups train? a) the head only  b) the late body and the head  "
    "c) every group",
    "The layer groups are [early body, late body, head], counted from 0; freeze_to(n) freezes the groups before "
    "index n.",
    'answer = "a"',
    _freeze_to_two)



# ---------------------------------------------------------------- the lessons' questionnaires (issue 41)
# Each lesson ends with written questions and a few checked ones: a number worked out before running anything, or
# a choice among "a", "b", "c". The hint (after a wrong try) points at the reasoning, never at the answer;
# `solution(key)` gives the answer when the student asks for it.

def _close_to(target, tolerance):
    def checker(answer):
        return (answer is not None and not isinstance(answer, (bool, str))
                and abs(float(answer) - target) <= tolerance)
    return checker


def _either(*checkers):
    return lambda answer: any(checker(answer) for checker in checkers)


def _choice(letter):
    def checker(answer):
        return isinstance(answer, str) and answer.strip().lower().strip(")") == letter
    return checker


def _question(key, prompt, hint, solution, checker):
    EXERCISES[key] = Exercise(prompt, hint, solution, checker)


_question(
    "01-q-cross-entropy",
    "The model gives a photo of a dog a probability of 0.25 of being a dog: what is its cross-entropy loss?",
    "Cross-entropy is minus the (natural) log of the probability the model gives the right class: a 50/50 guess "
    "costs ln 2 ≈ 0.693.",
    "answer = -np.log(0.25)",
    _close_to(float(-np.log(0.25)), 0.01))
_question(
    "01-q-precompute-views",
    "With precompute=True and transforms_side_on, how many versions of each training photo does the head see in "
    "3 epochs? a) 1  b) 3  c) 8",
    "When were the stored activations computed, and from which images? Does anything recompute them between "
    "epochs?",
    'answer = "a"',
    _choice("a"))
_question(
    "02-q-two-steps",
    "Gradient descent on f(w) = w**2 from w = 1 at a learning rate of 0.1: what is w after two steps?",
    "One step is w - lr * f'(w), with f'(w) = 2w. Work out the first step, then start the second from where "
    "the first ended.",
    "w = 1.0\nfor _ in range(2):\n    w = w - 0.1 * 2 * w\nanswer = w",
    _close_to(0.64, 1e-6))
_question(
    "02-q-steps-per-decade",
    "The finder goes from 1e-7 to 10 in 100 mini-batches, multiplying by the same factor each time: after how "
    "many mini-batches has the rate grown 10 times?",
    "Count the orders of magnitude from 1e-7 to 10 (each one a factor of 10); the 100 mini-batches share them "
    "equally.",
    "answer = 100 / (np.log10(10) - np.log10(1e-7))   # 99 / 8 = 12.375 counts the 99 steps between 100 rates",
    _either(_close_to(100 / 8, 0.01), _close_to(99 / 8, 0.01)))
_question(
    "03-q-digits",
    "Which change would you leave out when augmenting handwritten digits? a) a small rotation  b) a left-right "
    "mirror  c) a little zoom",
    "For each change ask: is the changed image still a digit a person could have written, with the same label?",
    'answer = "b"',
    _choice("b"))
_question(
    "03-q-zoom-crop",
    "A 64-pixel tile zoomed in by max_zoom=1.25 at most: what is the side of the smallest square crop, in pixels?",
    "Zooming in by a factor z shows a square z times smaller than the tile, stretched back to the tile's size.",
    "answer = 64 / 1.25",
    _close_to(64 / 1.25, 0.5))
_question(
    "04-q-restarts",
    "During learn.fit(1e-2, 3, cycle_len=2), how many times does the rate jump back up to 1e-2?",
    "Sketch the rate over the whole training, epoch by epoch: where does it rise again?",
    "n_cycle = 3\nanswer = n_cycle - 1",
    _close_to(2, 0))
_question(
    "04-q-flat-minimum",
    "Two minima with the same training loss, one steep and one gentle; the validation images shift the loss "
    "surface a little: which gives the lower validation loss? a) the steep one  b) the same  c) the gentle one",
    "Move each minimum a little sideways: where does the loss climb more, in a steep valley or in a wide one?",
    'answer = "c"',
    _choice("c"))
_question(
    "05-q-unfreeze-first",
    "unfreeze() right after creating the learner, and every group trains before the head has: all three are true, "
    "which one is why this can damage the pretrained body? a) the early body's rate is 100 times smaller than the "
    "head's  b) the gradients that reach the body pass back through the head's weights, still random  c) an epoch "
    "through the whole network is much slower than one on stored activations",
    "Ask of each statement: would it make training the body early do harm, or only make it slower or gentler?",
    'answer = "b"',
    _choice("b"))
_question(
    "05-q-bn-frozen-parts",
    "With bn_freeze(True) on an unfrozen learner, what in the body's BatchNorm layers still changes? a) the weights "
    "and biases  b) the running means and variances  c) nothing",
    "A BatchNorm layer holds two kinds of numbers: statistics it measures on mini-batches, and weights the "
    "optimizer trains. bn_freeze keeps the layer in evaluation mode: which kind does that affect?",
    'answer = "a"',
    _choice("a"))
_question(
    "06-q-conv-weights",
    "A convolution with 3x3 kernels, 2 input channels and 4 output channels, no bias: how many weights?",
    "Count kernels first: how many does one output channel need? Then count the numbers in one kernel.",
    "answer = 4 * 2 * 3 * 3",
    _close_to(72, 0))
_question(
    "06-q-negated-kernel",
    "Every weight of the top-edge kernel times -1: where does it fire after ReLU? a) nowhere  b) the same places  "
    "c) where the old one was negative",
    "Multiplying the kernel by -1 multiplies every output cell by -1. Which cells does ReLU then keep?",
    'answer = "c"',
    _choice("c"))
_question(
    "07-q-tta-passes",
    "TTA with the plain image and 4 augmented views: how many images go through the network for 500 test images?",
    "How many times does one test image go through the network with TTA?",
    "answer = 500 * (1 + 4)",
    _close_to(2500, 0))
_question(
    "07-q-honest-set",
    "You chose your settings by looking at the validation accuracy many times: which set still gives an honest "
    "estimate? a) test  b) validation  c) training",
    "A set you used to make choices has been fitted a little by those choices. Which set played no part in any "
    "of them?",
    'answer = "a"',
    _choice("a"))
_question(
    "08-q-recompile",
    "Keras 3 on PyTorch: a model was compiled and fit with its first 140 layers frozen; you set them trainable=True and call "
    "fit again without compiling. What happens? a) every layer trains  b) only the layers after the first 140 "
    "train  c) fit stops with an error",
    "Which weights was the optimizer built for at the first fit, and which call builds it anew?",
    'answer = "c"   # measured: Keras 3 on PyTorch raises ValueError "Unknown variable"',
    _choice("c"))
_question(
    "08-q-validation-steps",
    "validation_steps = n // batch_size with 200 validation images and batch_size 64: how many images are never "
    "scored?",
    "`//` rounds down: what does validation_steps leave out?",
    "answer = 200 - (200 // 64) * 64",
    _close_to(8, 0))
_question(
    "09-q-extra-tag",
    "Tags `clear primary`, prediction `clear primary water`: what is its F2?",
    "Precision = right predicted tags / predicted tags; recall = right predicted tags / true tags; "
    "F2 = 5 * precision * recall / (4 * precision + recall).",
    "precision, recall = 2 / 3, 2 / 2\nanswer = 5 * precision * recall / (4 * precision + recall)",
    _close_to(5 * (2 / 3) / (4 * (2 / 3) + 1), 1e-3))
_question(
    "09-q-softmax-sum",
    "One softmax over 17 tags: the most that three right tags' probabilities can add up to? a) 1  b) 3  c) 17",
    "What do a softmax's outputs always add up to, over all the classes together?",
    'answer = "a"',
    _choice("a"))
_question(
    "10-q-one-photo",
    "20 validation photos in all: by how many percentage points does one photo move the accuracy?",
    "Write the accuracy as a fraction. What changes in it when one more photo is classified right?",
    "answer = 100 / 20",
    _close_to(5, 1e-6))
_question(
    "10-q-leak",
    "A photo in train and its resized copy in valid: the measured validation accuracy? a) looks worse than the "
    "model is  b) looks better  c) unchanged",
    "What is the validation accuracy meant to estimate? Is that photo still a fair test of it?",
    'answer = "b"',
    _choice("b"))


# ---------------------------------------------------------------- predict before you run

@dataclass(frozen=True)
class Prediction:
    question: str
    measure: callable        # (**context) -> the answer, read off the student's own run
    agrees: callable         # (guess, answer) -> bool
    why: str



PREDICTIONS = {}   # {key: Prediction}


def _within_factor(factor):
    return lambda guess, answer: float(guess) > 0 and answer / factor <= float(guess) <= answer * factor


PREDICTIONS["01-precompute-speedup"] = Prediction(
    "How many times faster is an epoch on the stored activations than an epoch through the whole network?",
    lambda head_epoch, full_epoch: full_epoch / head_epoch,
    _within_factor(3),
    "The head does a few thousand multiplications per photo; the body does hundreds of millions, and the "
    "photos must be read and decoded too. How many times faster depends on the machine, so a guess within 3x "
    "counts.")


PREDICTIONS["02-batch-speed"] = Prediction(
    "On this machine, does a batch of 32 photos go through the body faster per photo than a batch of 1? "
    "Guess True or False.",
    lambda per_second: bool(per_second[32] > 1.2 * per_second[1]),
    lambda guess, answer: bool(guess) == answer,
    "A GPU has thousands of cores that a single photo cannot keep busy: batches are many times faster per "
    "photo. On a CPU the gain depends on the processor (its cores, vector units and caches), from little to "
    "several times: the speeds printed above are this machine's (here 'faster' means by more than 20%).")


def _last_training_loss(runs):
    """The run ("augmentation" or "no augmentation") whose training loss ends lower, averaged over its seeds."""
    last = {name: np.mean([h.trn_loss.iloc[-1] for h in hs]) for name, hs in runs.items()}
    return min(last, key=last.get)


PREDICTIONS["03-lower-training-loss"] = Prediction(
    "Which run will end with the lower training loss: \"augmentation\" or \"no augmentation\"?",
    lambda runs: _last_training_loss(runs),
    lambda guess, answer: guess == answer,
    "Without augmentation the head sees the same 40 photos every epoch and can memorise them: its training "
    "loss heads for zero. With augmentation every epoch brings new versions of the photos, a harder task: "
    "its training loss stays higher, and closer to the validation loss.")


def _biggest_layer(counts):
    return max(counts, key=counts.get)


PREDICTIONS["06-biggest-layer"] = Prediction(
    "Which layer of the small network holds the most parameters: \"conv1\", \"conv2\" or "
    "\"fully connected\"?",
    lambda counts: _biggest_layer(counts),
    lambda guess, answer: guess == answer,
    "A convolution's weights are shared across the whole image: 3x3 per input and output channel, however "
    "large the image. A fully connected layer has one weight per input number and output: 16 x 12 x 12 "
    "inputs times 10 outputs.")


PREDICTIONS["09-predict-nothing"] = Prediction(
    "A model that predicts no tag at all for any chip: what fraction of the (chip, tag) decisions does it get "
    "right? Guess a number from 0 to 1.",
    lambda nothing, targs: float((np.asarray(nothing) == np.asarray(targs)).mean()),
    lambda guess, answer: abs(float(guess) - answer) <= 0.1,
    "Most of the 17 tags are absent from most chips, so 'no' is right most of the time: accuracy rewards "
    "predicting nothing. F-beta gives that model 0.")
