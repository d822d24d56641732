"""What did the model get right and wrong? Pick images by correctness and confidence, and show them."""
import numpy as np
import torch

from lessonlib.engine.fonts import use_cjk_font
from lessonlib.engine.language import problem, say
from lessonlib.training import get_preds, log_probs
from lessonlib.viz import plot_images

__all__ = ["class_probs", "confusion_table", "grad_cam", "most_by_correct", "most_uncertain", "plot_confusion_matrix", "plot_heatmaps",
           "plot_top_losses", "plot_tta_views", "tta_views", "plot_val_with_title", "random_by_correct", "softmax_table", "top_losses"]


def class_probs(log_preds):
    """Probabilities from the log-probabilities `learn.predict()` returns."""
    return np.exp(np.asarray(log_preds))


def random_by_correct(preds, y, correct, n=4, seed=0):
    """Indices of up to `n` random images that were classified correctly (or not)."""
    mask = (np.asarray(preds) == np.asarray(y)) == correct
    idxs = np.flatnonzero(mask)
    return np.random.default_rng(seed).permutation(idxs)[:n]


def most_by_correct(probs, y, cls, correct, n=4):
    """Images of class `cls` classified correctly (or not) with the most confidence in the answer given.

    `probs` is an (images x classes) array. For correct ones, highest probability of `cls`;
    for mistakes, highest probability of the wrong class.
    """
    probs, y = np.asarray(probs), np.asarray(y)
    preds = probs.argmax(1)
    mask = (y == cls) & ((preds == y) == correct)
    idxs = np.flatnonzero(mask)
    confidence = probs[idxs, preds[idxs]]
    return idxs[np.argsort(-confidence)][:n]


def most_uncertain(probs, n=4):
    """Images whose top probability is lowest: the model is least sure about them."""
    probs = np.asarray(probs)
    return np.argsort(probs.max(1))[:n]


# The titles the notes give plot_val_with_title (lesson 01 keeps their code): shown in the reader's language.
TITLES = ("correctly classified", "incorrectly classified", "most confident correct cats",
          "most confident correct dogs", "most confident wrong: cats called dogs",
          "most confident wrong: dogs called cats", "most uncertain")


def plot_val_with_title(data, idxs, probs, title):
    """Show validation images `idxs`, each titled with the probability of its predicted class; one of the notes'
    `TITLES` is shown in the reader's language, any other title as given."""
    title = say(title) if title in TITLES else title
    if len(idxs) == 0:
        print(say("{title}: none", title=title))
        return None
    probs = np.asarray(probs)
    images = [data.val_ds.get_image(i) for i in idxs]
    titles = [f"{data.classes[probs[i].argmax()]} {probs[i].max():.3f}" for i in idxs]
    return plot_images(images, titles, suptitle=title)


def softmax_table(scores, probs, target, loss, classes):
    """A table for people of softmax worked by hand: each row's raw `scores` and `probs` per class, its right
    class (`target`, indices) and `loss`, rounded to 3 places; column names in the reader's language."""
    import pandas as pd
    return pd.DataFrame({**{say("score {cls}", cls=c): scores[:, i] for i, c in enumerate(classes)},
                         **{say("prob {cls}", cls=c): probs[:, i] for i, c in enumerate(classes)},
                         say("right class"): [classes[t] for t in target], say("loss"): loss}).round(3)


def confusion_table(counts, classes):
    """The confusion matrix `counts` (true class in rows, predicted in columns, as scikit-learn's
    `confusion_matrix` gives it) as a table with its rows and columns named for people."""
    import pandas as pd
    return pd.DataFrame(counts, index=[say("true {cls}", cls=c) for c in classes],
                        columns=[say("predicted {cls}", cls=c) for c in classes])


def plot_confusion_matrix(y, preds, classes, ax=None):
    """Counts of true class (rows) against predicted class (columns), drawn by scikit-learn."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    use_cjk_font()   # class names in any language
    ax = ax or plt.subplots(figsize=(3.5, 3.5))[1]
    ConfusionMatrixDisplay.from_predictions(y, preds, display_labels=classes, ax=ax, colorbar=False,
                                            cmap="Blues")
    ax.set(xlabel=say("Predicted label"), ylabel=say("True label"))
    return ax


def top_losses(log_preds, y, n=4):
    """(indices, losses) of the `n` images with the highest loss: the most confident mistakes first."""
    log_preds, y = np.asarray(log_preds), np.asarray(y)
    losses = -log_preds[np.arange(len(y)), y]
    order = np.argsort(-losses)[:n]
    return order, losses[order]


def plot_top_losses(data, log_preds, y, n=4):
    """The `n` validation images with the highest loss, titled label / prediction / loss / probability."""
    idxs, losses = top_losses(log_preds, y, n)
    probs = np.exp(np.asarray(log_preds))
    titles = [say("{true} / {predicted}\nloss {loss:.2f}, p {p:.2f}", true=data.classes[y[i]],
                  predicted=data.classes[probs[i].argmax()], loss=l, p=probs[i, y[i]])
              for i, l in zip(idxs, losses)]
    return plot_images([data.val_ds.get_image(i) for i in idxs], titles,
                       suptitle=say("highest loss: true / predicted, loss, probability of the true class"))


def grad_cam(learn, x, cls=None):
    """Grad-CAM heat map (h x w, 0..1) of where the body's last feature maps support class `cls`.

    `x` is one uint8 image tensor (3, sz, sz) as the model receives it; `cls` defaults to the
    predicted class. Each feature map is weighted by the mean gradient of the class score with
    respect to it; the weighted sum, with negatives cut off (ReLU), is the heat map.
    """
    import torch

    body = learn.body
    device = next(learn.model.parameters()).device
    learn.model.eval()
    with torch.enable_grad():
        features = body.late(body.early(body.normalize(x[None].to(device)))).detach().requires_grad_(True)
        scores = learn.head(body.pool(features))
        cls = int(scores.argmax()) if cls is None else int(cls)
        (grad,) = torch.autograd.grad(scores[0, cls], features)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * features).sum(dim=1))[0].detach().float().cpu()
    return (cam / cam.max()).numpy() if cam.max() > 0 else cam.numpy()


def plot_heatmaps(learn, idxs):
    """Validation images `idxs` in one row, each with its Grad-CAM heat map for the predicted class laid over it,
    titled with its true class."""
    import matplotlib.pyplot as plt
    import torch
    import torch.nn.functional as F

    use_cjk_font()   # class names in any language
    data = learn.data
    fig, axes = plt.subplots(1, len(idxs), figsize=(2.8 * len(idxs), 3), squeeze=False)
    for ax, i in zip(axes[0], idxs):
        x, label = data.val_ds.tfm(data.val_ds.get_image(i)), data.val_ds.y[i]
        cam = grad_cam(learn, x)
        big = F.interpolate(torch.as_tensor(cam)[None, None], size=x.shape[1:], mode="bilinear")[0, 0]
        ax.imshow(x.permute(1, 2, 0).numpy())
        ax.imshow(big.numpy(), cmap="jet", alpha=0.4)
        ax.set_title(say("true: {cls}", cls=data.classes[label]), fontsize=10)
        ax.axis("off")
    fig.suptitle(say("where the network looked (Grad-CAM for the predicted class)"))
    fig.tight_layout()
    return fig


def tta_views(learn, i, n_aug=4):
    """The views of validation photo `i` that `learn.TTA(n_aug)` averages, and the model's probabilities for each.

    Returns `(views, probs)`: `views` (n_aug + 1, 3, sz, sz), uint8 images as the model receives them: the photo as
    it is (the validation transform, what `learn.predict()` sees), then `n_aug` copies drawn from
    `learn.data.tfms.tta`, the transform TTA draws its copies from (random: each call draws new ones); `probs`
    (n_aug + 1, classes), the model's probabilities for each view. TTA's answer for the photo is `probs.mean(0)`.
    """
    if learn.objective.to_preds is not log_probs:
        raise ValueError(problem("tta_views shows a learner with one class per photo; for tags, average "
                                 "learn.TTA()'s tag probabilities with np.mean(log_preds, 0)"))
    photo, tfms = learn.data.val_ds.get_image(i), learn.data.tfms
    views = torch.stack([tfms.valid(photo)] + [tfms.tta(photo) for _ in range(n_aug)])
    model = learn.policy.prepare(learn.model).eval()
    out, _ = get_preds(model, [(views, torch.zeros(len(views), dtype=torch.long))], learn.policy)
    return views, np.exp(log_probs(out).numpy())


def plot_tta_views(learn, i, n_aug=4):
    """Validation photo `i` as TTA shows it to the model (`tta_views`): each view titled with the model's
    probability for the class TTA predicts, the average of them all above. Returns `(figure, probs)`.

    Example:
        >>> fig, probs = plot_tta_views(learn, 0)
        >>> probs.mean(0)       # what TTA predicts for photo 0
    """
    views, probs = tta_views(learn, i, n_aug)
    mean = probs.mean(0)
    cls = int(mean.argmax())
    name = learn.data.classes[cls]
    titles = [say("as it is\n{cls} {p:.3f}", cls=name, p=probs[0, cls])]
    titles += [say("view {k}\n{cls} {p:.3f}", k=k, cls=name, p=p) for k, p in enumerate(probs[1:, cls], start=1)]
    fig = plot_images(list(views), titles, cols=len(views),
                      suptitle=say("TTA averages the {n} views: {cls} {p:.3f}", n=len(views), cls=name, p=mean[cls]))
    return fig, probs
