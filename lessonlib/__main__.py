"""Command line: `python -m lessonlib doctor` and `python -m lessonlib train PATH`."""
import argparse


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lessonlib")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="report Python, PyTorch, the device, and where data and caches go")
    train = commands.add_parser("train", help="train a classifier on an image folder (dogscats layout)")
    train.add_argument("path", help="folder with train/<class>/ and valid/<class>/, or a catalog name")
    train.add_argument("--arch", default="resnet34")
    train.add_argument("--sz", type=int, default=224)
    train.add_argument("--bs", type=int, default=64)
    train.add_argument("--lr", type=float, default=1e-2)
    train.add_argument("--epochs", type=int, default=1, help="epochs on precomputed activations")
    train.add_argument("--save", default=None, help="save the model under this name")
    fetch = commands.add_parser("fetch-weights", help="download torchvision's ImageNet weights (for a classroom mirror)")
    fetch.add_argument("archs", nargs="+", help="e.g. resnet34 resnet50")
    fetch.add_argument("--to", required=True, help="folder to write them to, e.g. $LESSONLIB_DATA_MIRROR/weights")
    args = parser.parse_args(argv)

    if args.command == "fetch-weights":
        from lessonlib.weights import fetch_weights
        fetch_weights(args.archs, args.to)
        return 0

    if args.command == "doctor":
        from lessonlib.runtime import doctor
        report = doctor()
        policy = report.pop("policy")
        for key, value in report.items():
            print(f"{key:>17}: {value}")
        print(policy)
        return 0 if "PROBLEM" not in report["lessonlib home"] else 1

    from pathlib import Path

    from lessonlib import datasets
    from lessonlib.data import ImageClassifierData
    from lessonlib.learner import ConvLearner
    from lessonlib.transforms import tfms_from_model, transforms_side_on

    path = Path(args.path) if Path(args.path).is_dir() else datasets.get(args.path)
    tfms = tfms_from_model(args.arch, args.sz, aug_tfms=transforms_side_on, max_zoom=1.1)
    data = ImageClassifierData.from_paths(path, tfms=tfms, bs=args.bs)
    learn = ConvLearner.pretrained(args.arch, data, precompute=True)
    learn.fit(args.lr, args.epochs)
    if args.save:
        learn.save(args.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
