"""Command line: `python -m lessonlib doctor`, `train PATH` (the lesson's recipe, headless), `fetch-weights`,
`app MODEL` (the exported model on a web page, served by Voila).

    python -m lessonlib train dogscats-mini --arch resnet34 --sz 224 --epochs 1 --cycle-len 1 \\
        --unfreeze --lrs 1e-4,1e-3,1e-2 --bn-freeze --tta --test-name test --submission sub.csv --save mine

The recipe is lesson 07's: the head on precomputed activations (or, with --no-precompute, on augmented
images), then with --unfreeze the whole network with differential learning rates; SGDR with
--cycle-len/--cycle-mult. It prints the lesson's table (a progress bar too on a terminal) and exits with a
non-zero status on any failure. Under `torchrun`, each process takes its share of every mini-batch
(`--bs` is the whole mini-batch) and only the first prints and writes.
"""
import argparse
import math
import os
import sys
from pathlib import Path

from lessonlib.engine.language import problem, say

MAX_SZ = 2048   # pixels per side: a mini-batch of 64 such images is 3 GB of float32 already


def _rates(text):
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(problem("{text!r}: give rates separated by commas, e.g. 1e-4,1e-3,1e-2",
                                                 text=text)) from None


def _parser():
    parser = argparse.ArgumentParser(prog="python -m lessonlib")
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser("doctor", help="report Python, PyTorch, the device policy, and where data and caches go")
    doctor.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best one present)")
    train = commands.add_parser("train", help="the lesson's recipe on an image folder (dogscats layout)")
    train.add_argument("path", help="folder with train/<class>/ and valid/<class>/, or a catalog name (dogscats-mini)")
    train.add_argument("--arch", default="resnet34")
    train.add_argument("--sz", type=int, default=224)
    train.add_argument("--bs", type=int, default=64, help="images per mini-batch, over all processes together")
    train.add_argument("--lr", type=float, default=1e-2, help="learning rate of the head")
    train.add_argument("--epochs", type=int, default=1, help="cycles of each stage (epochs without --cycle-len)")
    train.add_argument("--no-precompute", action="store_true", help="train the head on augmented images")
    train.add_argument("--cycle-len", type=int, default=None, help="epochs per SGDR cycle")
    train.add_argument("--cycle-mult", type=int, default=1, help="each cycle this many times longer")
    train.add_argument("--unfreeze", action="store_true", help="then train every layer with --lrs")
    train.add_argument("--lrs", type=_rates, default=None, help="early,late,head rates (default lr/100,lr/10,lr)")
    train.add_argument("--bn-freeze", action="store_true", help="keep the body's BatchNorm statistics fixed")
    train.add_argument("--tta", action="store_true", help="test-time augmentation for the final accuracy")
    train.add_argument("--test-name", default=None, help="folder of unlabelled test images, e.g. test")
    train.add_argument("--submission", default=None, help="write the test predictions to this CSV (Kaggle style)")
    train.add_argument("--save", default=None, help="save the model as LESSONLIB_HOME/models/NAME.pt")
    train.add_argument("--history", default=None, help="write the training table to this CSV")
    train.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best one present)")
    train.add_argument("--seed", type=int, default=42)
    fetch = commands.add_parser("fetch-weights", help="download torchvision's ImageNet weights (for a classroom mirror)")
    fetch.add_argument("archs", nargs="+", help="e.g. resnet34 resnet50")
    fetch.add_argument("--to", required=True, help="folder to write them to, e.g. $LESSONLIB_DATA_MIRROR/weights")
    report = commands.add_parser("class-report", help="how the class did on the exercises (LESSONLIB_CLASS_LOG=1)")
    report.add_argument("homes", nargs="+", help="the students' homes or LESSONLIB_HOME folders, e.g. /home/*")
    report.add_argument("--out", default=None, help="also write by_exercise.csv and by_student.csv into this folder")
    app = commands.add_parser("app", help="serve an exported model (learn.export) as a web page with Voila")
    app.add_argument("model", nargs="?", default=None,
                     help="the file learn.export() wrote (default: LESSONLIB_HOME/exports/export.pt)")
    app.add_argument("--port", type=int, default=8866, help="http://127.0.0.1:PORT/ (default 8866)")
    app.add_argument("--page", default=None, help="your own page notebook (default: lessonlib's, copied to "
                                                  "LESSONLIB_HOME/app/app.ipynb)")
    return parser


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "doctor":
            return _doctor(args)
        if args.command == "class-report":
            from lessonlib.class_report import print_report
            print_report(args.homes, args.out)
            return 0
        if args.command == "app":
            from lessonlib.app import serve
            return serve(args.model, args.port, args.page)
        if args.command == "fetch-weights":
            from lessonlib.engine.weights import fetch_weights
            fetch_weights(args.archs, args.to)
            return 0
        return train(args)
    except (ValueError, TypeError, OSError, FloatingPointError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _doctor(args):
    from lessonlib.engine.doctor import doctor
    report = doctor(args.device)
    print(report.text(width=17))   # the policy last; absent when a setting is wrong: that comes first
    return 0 if not any("PROBLEM" in str(v) for k, v in report.items() if k != "policy") else 1


def _check(args):
    """Everything that can be checked before any training: a mistake found after an hour is an hour lost."""
    from lessonlib import datasets
    from lessonlib.engine.checkpoints import model_path

    if args.save:
        model_path(args.save)
    for name, value in (("--epochs", args.epochs), ("--cycle-mult", args.cycle_mult), ("--sz", args.sz),
                        ("--bs", args.bs), ("--cycle-len", args.cycle_len or 1)):
        if value < 1:
            raise ValueError(problem("{name} {value}: it must be 1 or more", name=name, value=value))
    if args.sz > MAX_SZ:
        raise ValueError(problem("--sz {sz}: images that large would not fit in memory; use at most {MAX_SZ} "
                                 "pixels (the lesson uses 224)", sz=args.sz, MAX_SZ=MAX_SZ))
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(problem("--lr {lr}: a learning rate is a positive number, such as 1e-2", lr=args.lr))
    if args.lrs is not None:
        if not args.unfreeze:
            raise ValueError(problem("--lrs sets the rates of the layer groups after --unfreeze: add --unfreeze, "
                                     "or leave --lrs out (without --unfreeze only the head trains, at --lr)"))
        if len(args.lrs) not in (1, 3) or not all(math.isfinite(r) and r > 0 for r in args.lrs):
            raise ValueError(problem("--lrs {lrs}: give one positive rate, or three (early body, late body, "
                                     "head), e.g. 1e-4,1e-3,1e-2", lrs=','.join(map(str, args.lrs))))
    if args.submission and not args.test_name:
        raise ValueError(problem("--submission needs --test-name (the folder of test images)"))
    for flag, target in (("--submission", args.submission), ("--history", args.history)):
        if target:
            _writable_file(flag, Path(target))
    path = Path(args.path)
    if path.is_dir():
        return path
    if args.path in datasets.CATALOG:
        return datasets.get(args.path)
    raise FileNotFoundError(problem("{path} is neither a folder nor a data set of the catalog ({names})",
                                    path=args.path, names=', '.join(sorted(datasets.CATALOG))))


def _writable_file(flag, target):
    """A CSV the run will write at its end: its folder must exist and take files now, not after the training."""
    if target.is_dir():
        raise ValueError(problem("{flag} {target} is a folder: give a file name, e.g. {example}",
                                 flag=flag, target=target, example=target / 'out.csv'))
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(problem("{flag} {target}: the folder {folder} does not exist; create it first",
                                        flag=flag, target=target, folder=folder))
    if not os.access(folder, os.W_OK):
        raise PermissionError(problem("{flag} {target}: the folder {folder} cannot be written to",
                                      flag=flag, target=target, folder=folder))


def train(args):
    """The lesson's recipe (lesson 07), as the command line's flags describe it."""
    from lessonlib.data import ImageClassifierData, data_signature
    from lessonlib.engine import distributed
    from lessonlib.engine.runtime import seed_everything
    from lessonlib.learner import ConvLearner
    from lessonlib.transforms import tfms_from_model, transforms_side_on

    with distributed.processes(args.device) as run:
        path = run.first(lambda: _check(args))   # downloads once, on the first process
        seed_everything(args.seed)
        tfms = tfms_from_model(args.arch, args.sz, aug_tfms=transforms_side_on, max_zoom=1.1)
        data = ImageClassifierData.from_paths(path, tfms=tfms, bs=run.local_bs(args.bs), test_name=args.test_name,
                                              device=run.policy)
        run.agree("the arguments", repr(sorted((k, v) for k, v in vars(args).items() if k != "path")))
        run.agree("the data (classes and files)", data_signature(data))
        learn = ConvLearner.pretrained(args.arch, data, precompute=not args.no_precompute)
        learn.fit(args.lr, args.epochs, cycle_len=args.cycle_len, cycle_mult=args.cycle_mult)
        if args.unfreeze:
            learn.unfreeze()
            learn.bn_freeze(args.bn_freeze)
            lrs = args.lrs or [args.lr / 100, args.lr / 10, args.lr]
            learn.fit(lrs, args.epochs, cycle_len=args.cycle_len, cycle_mult=args.cycle_mult)
        try:
            _finish(args, run, learn, data)
        finally:   # whatever fails at the end, the model trained until then is kept
            if args.save:
                run.first(lambda: learn.save(args.save))
    return 0


def _finish(args, run, learn, data):
    """After training: TTA accuracy, the submission, the history."""
    import numpy as np

    from lessonlib.data import submission_frame

    if args.tta:
        log_preds, y = learn.TTA()
        accuracy = float((np.mean(np.exp(log_preds), 0).argmax(1) == y).mean())
        run.print(say("validation accuracy with TTA: {accuracy:.4f} (without: {without:.4f})", accuracy=accuracy,
                      without=learn.history.accuracy.iloc[-1]))
    if args.submission:
        log_preds = learn.TTA(is_test=True)[0] if args.tta else learn.predict(is_test=True)[None]
        probs = np.mean(np.exp(log_preds), 0)
        frame = submission_frame(data, probs, data.classes[-1])
        run.first(lambda: frame.to_csv(args.submission, index=False))
        run.print(say("wrote {n} predictions to {dest}", n=len(frame), dest=args.submission))
    if args.history:
        run.first(lambda: learn.history.to_csv(args.history, index=False))


if __name__ == "__main__":
    raise SystemExit(main())
