"""Evaluation metrics: hand-computed known answers, the pairwise definition of AUROC, table layout."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantwatch.models import metrics
from plantwatch.models.metrics import (
    accuracy,
    auroc,
    confusion_matrix,
    format_table,
    per_class_precision_recall,
)

LABELS = ["normal", "inner_race", "ball", "outer_race"]
TRUE = ["normal", "normal", "inner_race", "inner_race", "inner_race", "ball", "ball", "outer_race"]
PREDICTED = ["normal", "ball", "inner_race", "inner_race", "outer_race", "ball", "normal", "outer_race"]


def test_confusion_matrix_counts_true_rows_against_predicted_columns() -> None:
    matrix = confusion_matrix(TRUE, PREDICTED, LABELS)

    assert matrix.dtype == np.int64
    assert matrix.tolist() == [
        [1, 0, 1, 0],  # normal: once right, once called ball
        [0, 2, 0, 1],  # inner_race: twice right, once called outer_race
        [1, 0, 1, 0],  # ball: once right, once called normal
        [0, 0, 0, 1],  # outer_race: right
    ]


def test_confusion_matrix_has_a_zero_row_for_an_absent_label() -> None:
    matrix = confusion_matrix(["a", "a"], ["a", "c"], ["a", "b", "c"])

    assert matrix.tolist() == [[1, 0, 1], [0, 0, 0], [0, 0, 0]]


@pytest.mark.parametrize(
    ("true", "predicted", "labels", "message"),
    [
        (["a", "b"], ["a"], ["a", "b"], "2 items but predicted_labels has 1"),
        (["a", "x"], ["a", "a"], ["a", "b"], r"true_labels holds label\(s\) not in labels .*'x'"),
        (["a", "a"], ["a", "y"], ["a", "b"], r"predicted_labels holds label\(s\) not in labels .*'y'"),
        (["a"], ["a"], ["a", "a"], "repeated"),
    ],
)
def test_confusion_matrix_rejects_bad_input(
    true: list[str], predicted: list[str], labels: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        confusion_matrix(true, predicted, labels)


def test_per_class_precision_recall_matches_hand_counts() -> None:
    result = per_class_precision_recall(TRUE, PREDICTED, LABELS)

    assert list(result) == LABELS
    assert result["normal"] == (0.5, 0.5, 2)  # predicted normal twice, once right; 2 true normals
    assert result["inner_race"] == (1.0, pytest.approx(2 / 3), 3)
    assert result["ball"] == (0.5, 0.5, 2)
    assert result["outer_race"] == (0.5, 1.0, 1)  # predicted twice (once wrongly for inner_race)


def test_per_class_precision_recall_is_nan_when_undefined() -> None:
    result = per_class_precision_recall(["a", "a"], ["a", "a"], ["a", "b"])

    assert result["a"] == (1.0, 1.0, 2)
    precision, recall, support = result["b"]
    assert math.isnan(precision) and math.isnan(recall) and support == 0


def test_accuracy_is_the_share_of_matches() -> None:
    assert accuracy(TRUE, PREDICTED) == 5 / 8
    assert accuracy(["a"], ["a"]) == 1.0
    with pytest.raises(ValueError, match="no items"):
        accuracy([], [])
    with pytest.raises(ValueError, match="2 items but predicted_labels has 1"):
        accuracy(["a", "b"], ["a"])


def test_auroc_perfect_inverted_and_chance() -> None:
    positives = np.array([False, False, True, True])

    assert auroc([0.1, 0.2, 0.8, 0.9], positives) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], positives) == 0.0
    assert auroc([0.5, 0.5, 0.5, 0.5], positives) == 0.5  # all tied: every pair counts a half


def test_auroc_counts_ties_as_half() -> None:
    # positives 2, 3 against negatives 1, 2: pairs (2>1)=1, (2=2)=0.5, (3>1)=1, (3>2)=1 → 3.5 / 4.
    assert auroc([1.0, 2.0, 2.0, 3.0], [False, True, False, True]) == 0.875
    # positives 1, 1, 3 against negatives 1, 2: 0.5 + 0 + 0.5 + 0 + 1 + 1 = 3 of 6 pairs.
    assert auroc([1.0, 1.0, 3.0, 1.0, 2.0], [True, True, True, False, False]) == 0.5


@settings(max_examples=100, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(-3, 3).map(float), st.booleans()), min_size=2, max_size=30).filter(
        lambda items: 0 < sum(flag for _, flag in items) < len(items)
    )
)
def test_auroc_equals_the_pairwise_definition(pairs: list[tuple[float, bool]]) -> None:
    scores = [score for score, _ in pairs]
    flags = [flag for _, flag in pairs]
    positive = [s for s, f in pairs if f]
    negative = [s for s, f in pairs if not f]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positive for n in negative)

    assert auroc(scores, flags) == pytest.approx(wins / (len(positive) * len(negative)), abs=1e-12)


@pytest.mark.parametrize(
    ("scores", "positives", "message"),
    [
        ([0.1, 0.2], [True, True], "0 negative"),
        ([0.1, 0.2], [False, False], "0 positive"),
        ([0.1, 0.2, 0.3], [True, False], "equally long"),
        ([0.1, float("nan")], [True, False], "non-finite"),
        ([0.1, 0.2], [1, 0], "booleans"),
    ],
)
def test_auroc_rejects_bad_input(scores: list[float], positives: list[bool], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        auroc(scores, positives)


def test_format_table_aligns_text_left_and_numbers_right() -> None:
    table = format_table(
        ["fault", "precision", "support"],
        [["inner_race", 1.0, 3], ["ball", float("nan"), 12], ["normal", np.float64(0.25), np.int64(2)]],
    )

    assert table.splitlines() == [
        "fault       precision  support",
        "inner_race      1.000        3",
        "ball              nan       12",
        "normal          0.250        2",
    ]


def test_format_table_without_rows_and_with_a_short_row() -> None:
    assert format_table(["a", "bb"], []) == "a  bb"
    with pytest.raises(ValueError, match="row 1 has 1 cells but there are 2 headers"):
        format_table(["a", "b"], [["x", 1], ["y"]])


def test_metrics_docstring_examples_hold() -> None:
    failures, tried = doctest.testmod(metrics)

    assert tried >= 6 and failures == 0
