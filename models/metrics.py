"""Evaluation metrics for classifiers and anomaly scores, and a plain-text table for the terminal.

Pure numpy: labels and scores in, numbers out. Conventions:

- confusion matrices have one row per true label and one column per predicted label, in the order of
  ``labels``;
- a precision or recall with nothing to divide by (no prediction of a class, no true member of it) is
  NaN, not 0, so that "undefined" is never mistaken for "always wrong";
- AUROC is the Mann–Whitney U statistic divided by ``positives × negatives``, ties counting one half
  (Hanley & McNeil, "The meaning and use of the area under a ROC curve", Radiology 143, 1982).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from numbers import Real
from typing import TypeVar

import numpy as np

Label = TypeVar("Label", bound=Hashable)

FLOAT_DIGITS = 3
"""Decimals of floats in :func:`format_table`: 0.001 is finer than any metric here is meaningful."""
COLUMN_GAP = "  "


def confusion_matrix(
    true_labels: Sequence[Label], predicted_labels: Sequence[Label], labels: Sequence[Label]
) -> np.ndarray:
    """Counts of (true, predicted) pairs: ``matrix[i, j]`` is how many items of ``labels[i]`` were
    predicted as ``labels[j]``. Shape ``(len(labels), len(labels))``, dtype int64.

    >>> confusion_matrix(["a", "a", "b", "b", "b"], ["a", "b", "b", "b", "a"], ["a", "b"]).tolist()
    [[1, 1], [1, 2]]

    Raises ValueError for inputs of different lengths, repeated ``labels``, or a label (true or
    predicted) not in ``labels``.
    """
    true_index = _label_indices(true_labels, labels, "true_labels")
    predicted_index = _label_indices(predicted_labels, labels, "predicted_labels")
    if true_index.size != predicted_index.size:
        raise ValueError(
            f"true_labels has {true_index.size} items but predicted_labels has {predicted_index.size}"
        )
    size = len(labels)
    counts = np.bincount(true_index * size + predicted_index, minlength=size * size)
    return counts.reshape(size, size).astype(np.int64)


def per_class_precision_recall(
    true_labels: Sequence[Label], predicted_labels: Sequence[Label], labels: Sequence[Label]
) -> dict[Label, tuple[float, float, int]]:
    """``{label: (precision, recall, support)}`` for each of ``labels``.

    precision = true positives / predicted as the label, recall = true positives / support, support =
    number of true members of the label. NaN where the denominator is 0.

    >>> result = per_class_precision_recall(["a", "a", "b", "b", "b"], ["a", "b", "b", "b", "a"], ["a", "b"])
    >>> {label: (round(p, 4), round(r, 4), s) for label, (p, r, s) in result.items()}
    {'a': (0.5, 0.5, 2), 'b': (0.6667, 0.6667, 3)}
    """
    matrix = confusion_matrix(true_labels, predicted_labels, labels)
    hits = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / predicted, np.nan)
        recall = np.where(support > 0, hits / support, np.nan)
    return {label: (float(precision[i]), float(recall[i]), int(support[i])) for i, label in enumerate(labels)}


def accuracy(true_labels: Sequence[Hashable], predicted_labels: Sequence[Hashable]) -> float:
    """Share of items whose predicted label equals the true one, in [0, 1].

    >>> accuracy(["a", "b", "b", "a"], ["a", "b", "a", "a"])
    0.75

    Raises ValueError for inputs of different lengths or no items.
    """
    if len(true_labels) != len(predicted_labels):
        raise ValueError(
            f"true_labels has {len(true_labels)} items but predicted_labels has {len(predicted_labels)}"
        )
    if len(true_labels) == 0:
        raise ValueError("accuracy of no items is undefined")
    correct = sum(
        1 for true, predicted in zip(true_labels, predicted_labels, strict=True) if true == predicted
    )
    return correct / len(true_labels)


def auroc(scores: np.ndarray | Sequence[float], positives: np.ndarray | Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` (higher = more likely positive) against ``positives``.

    Exact: the Mann–Whitney U statistic over all (positive, negative) pairs, a pair counting 1 when the
    positive scores higher and 1/2 when they tie, divided by the number of pairs. Computed from average
    ranks, ``U = R₊ − n₊(n₊ + 1)/2``, in O(n log n). 1 is a perfect ranking, 0.5 chance, 0 inverted.

    >>> auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    0.75
    >>> auroc([1.0, 2.0, 2.0, 3.0], [False, True, False, True])  # one tie: (1 + 0.5 + 1 + 1) / 4
    0.875

    Raises ValueError when the lengths differ, a score is not finite, or either class is empty.
    """
    values = np.asarray(scores, dtype=np.float64)
    is_positive = np.asarray(positives)
    if values.ndim != 1 or is_positive.shape != values.shape:
        raise ValueError(
            f"scores {values.shape} and positives {is_positive.shape} must be 1-D and equally long"
        )
    if is_positive.dtype != np.bool_:
        raise ValueError(f"positives must be booleans, not {is_positive.dtype}")
    if not np.isfinite(values).all():
        raise ValueError(f"scores hold {int((~np.isfinite(values)).sum())} non-finite value(s)")
    positive_count = int(is_positive.sum())
    negative_count = values.size - positive_count
    if positive_count == 0 or negative_count == 0:
        raise ValueError(
            f"AUROC needs both classes: {positive_count} positive(s) and {negative_count} negative(s)"
        )
    ranks = _average_ranks(values)
    u_statistic = ranks[is_positive].sum() - positive_count * (positive_count + 1) / 2.0
    return float(u_statistic / (positive_count * negative_count))


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], *, float_digits: int = FLOAT_DIGITS
) -> str:
    """An aligned plain-text table: a header line, then one line per row, columns two spaces apart.

    Floats are written with ``float_digits`` decimals (NaN as ``nan``); columns whose cells are all
    numbers are right-aligned, the others left-aligned; trailing spaces are trimmed.

    >>> print(format_table(["fault", "recall", "n"], [["ball", 0.5, 12], ["inner_race", 1.0, 8]]))
    fault       recall   n
    ball         0.500  12
    inner_race   1.000   8

    Raises ValueError when a row has a different number of cells than ``headers``.
    """
    for number, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(f"row {number} has {len(row)} cells but there are {len(headers)} headers")
    cells = [[_cell(value, float_digits) for value in row] for row in rows]
    numeric = [bool(rows) and all(_is_number(row[column]) for row in rows) for column in range(len(headers))]
    widths = [
        max([len(header)] + [len(row[column]) for row in cells]) for column, header in enumerate(headers)
    ]

    def line(values: Sequence[str]) -> str:
        return COLUMN_GAP.join(
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(list(headers))] + [line(row) for row in cells])


def _label_indices(values: Sequence[Label], labels: Sequence[Label], name: str) -> np.ndarray:
    index_of = {label: index for index, label in enumerate(labels)}
    if len(index_of) != len(labels):
        raise ValueError(f"labels has repeated entries: {list(labels)}")
    unknown = sorted({repr(value) for value in values if value not in index_of})
    if unknown:
        raise ValueError(f"{name} holds label(s) not in labels {list(labels)}: {', '.join(unknown)}")
    return np.fromiter((index_of[value] for value in values), dtype=np.int64, count=len(values))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``, tied values sharing the mean of their ranks (as scipy's rankdata)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    ends = np.concatenate([starts[1:], [values.size]])
    group_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 … ends
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def _is_number(value: object) -> bool:
    return isinstance(value, Real | np.number) and not isinstance(value, bool | np.bool_)


def _cell(value: object, float_digits: int) -> str:
    if isinstance(value, float | np.floating):
        return "nan" if math.isnan(value) else f"{value:.{float_digits}f}"
    return str(value)
