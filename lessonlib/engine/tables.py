"""Tables people read in their language and code reads in English.

A `Table` is a pandas DataFrame: code indexes it by its English column names (`learn.history.val_loss`,
`summary["class"]`) and compares its cells with English values, in every language. Only what it shows — in a
notebook, `print` or `to_string` — puts the columns' labels and chosen cells into the reader's language
(`LESSONLIB_LANG`); in English it shows exactly what the DataFrame would.

    >>> Table({"images": [3]}, labels={"images": say("images")})   # shown as 图片数 under LESSONLIB_LANG=zh
"""
import numpy as np
import pandas as pd

__all__ = ["Table"]


def _named(value):
    """Whether a cell's value can be shown by name: a text, or a truth value (not 1 or 0, which equal True and False)."""
    return isinstance(value, (str, bool, np.bool_))


class Table(pd.DataFrame):
    """A DataFrame shown in the reader's language (see above). `labels`: {column: label}; `cells`:
    {column: {English value, or True/False: how it is shown}}. Both travel with the rows a selection keeps."""

    _metadata = ["labels", "cells"]

    def __init__(self, data=None, *args, labels=None, cells=None, **kwargs):
        super().__init__(data, *args, **kwargs)
        self.labels = dict(labels or getattr(data, "labels", None) or {})
        self.cells = dict(cells or getattr(data, "cells", None) or {})

    @property
    def _constructor(self):
        return Table

    def shown(self):
        """A plain DataFrame of what people see: the labels for the columns, the cells as they are shown."""
        view = pd.DataFrame(self)
        changed = {column: view[column].map(lambda v, names=names: names.get(v, v) if _named(v) else v)
                   for column, names in (self.cells or {}).items() if column in view.columns and names}
        if changed:
            view = view.assign(**changed)
        names = (self.cells or {}).get(view.index.name)
        if names:   # a named index's values, as a column's (set_index("result"))
            view.index = view.index.map(lambda v: names.get(v, v) if _named(v) else v).rename(view.index.name)
        labels = {k: v for k, v in (self.labels or {}).items() if k != v}
        if view.index.name in labels:   # a named index (e.g. set_index("framework")) is labelled too
            view = view.rename_axis(index=labels[view.index.name])
        return view.rename(columns=labels)

    def __repr__(self):
        return repr(self.shown())

    def _repr_html_(self):
        return self.shown()._repr_html_()

    def to_string(self, *args, **kwargs):
        return self.shown().to_string(*args, **kwargs)

    def to_html(self, *args, **kwargs):
        return self.shown().to_html(*args, **kwargs)
