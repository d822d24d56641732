"""lessonlib: the thin library behind the Lesson 2 notebooks (image classification with a pretrained CNN)."""
from lessonlib import datasets
from lessonlib.data import ImageClassifierData
from lessonlib.export import load_learner
from lessonlib.learner import ConvLearner
from lessonlib.engine.doctor import doctor
from lessonlib.engine.runtime import home, offer_download, output_path, seed_everything, setup, smoke_mode
from lessonlib.glossary import term
from lessonlib.transforms import tfms_from_model, transforms_basic, transforms_side_on, transforms_top_down

__all__ = [
    "ConvLearner", "ImageClassifierData", "datasets", "doctor", "home", "load_learner", "offer_download",
    "output_path", "seed_everything", "setup", "smoke_mode", "term", "tfms_from_model", "transforms_basic",
    "transforms_side_on", "transforms_top_down",
]
