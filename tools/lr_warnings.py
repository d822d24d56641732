"""The learning-rate finder on lessons 02, 07 and 09's default path in full mode (their data, sizes, networks): the finder's
notes and every warning raised while building the learner and finding the rate.

    python tools/lr_warnings.py
"""
import warnings

from lessonlib import ConvLearner, ImageClassifierData, datasets, setup, tfms_from_model, transforms_side_on, transforms_top_down

setup()
runs = {}
path = datasets.get("dogscats-mini", smoke=False)
for lesson, arch in (("02", "resnet34"), ("07", "efficientnet_lite0")):
    data = ImageClassifierData.from_paths(path, tfms=tfms_from_model(arch, 224, aug_tfms=transforms_side_on, max_zoom=1.1), bs=64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learn = ConvLearner.pretrained(arch, data, precompute=True)
        lrf = learn.lr_find()
    runs[lesson] = (lrf.suggestion, [str(w.message)[:70] for w in caught], lrf.notes)
planet = datasets.get("planet-mini", smoke=False)
data = ImageClassifierData.from_csv(planet, "train-jpg", "train_v2.csv", tfms=tfms_from_model("resnet34", 64, aug_tfms=transforms_top_down, max_zoom=1.05), bs=32)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    learn = ConvLearner.pretrained("resnet34", data, precompute=True)
    lrf = learn.lr_find()
runs["09"] = (lrf.suggestion, [str(w.message)[:70] for w in caught], lrf.notes)
for lesson, (lr, caught, notes) in runs.items():
    print(f"lesson {lesson}: lrf.suggestion {lr:.2e}; the finder's notes (its warnings): {notes or 'none'}; every warning "
          f"while building the learner and finding the rate: {caught or 'none'}")
