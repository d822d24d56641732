"""lessonlib's machinery, apart from the lesson: each module has one job, and the engine imports nothing outside
`lessonlib.engine` (tests/test_layers.py enforces it; the lesson imports the engine, never the other way).

- `settings`: every environment variable lessonlib reads (LESSONLIB_*), read and checked in one place.
- `storage`: files shared safely (atomic writes, locks, downloads that resume).
- `runtime`: where lessonlib runs (smoke mode, its writable home, a classroom mirror, notebooks, `setup()`).
- `interrupts`: what Ctrl-C does while something must not be left half done (one module, three ways).
- `snapshot`: putting weights, optimizer state and random generators back exactly.
- `networks`: the networks' plumbing (body, head, `ConvNet`), which `lessonlib.models` re-exports for the lesson.
- `policy`: how a run uses the hardware (device, precision, memory format, loader workers), decided once.
- `steps`: what this machine composes around the lesson's written step (`StepPlan`: device, precision, scaler,
  the finiteness guard) and the body in pieces in the model's own forward (`BodyInPieces`).
- `distributed`: several processes training one model (torchrun, DDP).
- `weights`: where pretrained weights come from (packaged, torch's cache, a mirror, a download).
- `checkpoints`: `learn.save` and `learn.load`, checked before anything is copied.
- `doctor`: what lessonlib sees on this machine (`python -m lessonlib doctor`).
"""
