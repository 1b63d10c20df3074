"""Metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from fmsearch.errors import InvalidArgumentError
from fmsearch.evaluation import metrics as m

# Two queries. q0 (class 1): hits of class 1,0,1,1; 3 relevant in the gallery.
# q1 (class 2): only two hits came back (K larger than the gallery); 5 relevant.
HIT_LABELS = np.array([[1, 0, 1, 1], [2, 2, -1, -1]])
QUERY_LABELS = np.array([1, 2])
N_REL = np.array([3, 5])


@pytest.fixture
def rel():
    return m.relevance(HIT_LABELS, QUERY_LABELS)


def test_relevance_never_counts_padding(rel):
    assert rel.tolist() == [[True, False, True, True], [True, True, False, False]]
    assert not m.relevance(np.array([[-1]]), np.array([-1])).any()


def test_precision(rel):
    np.testing.assert_allclose(m.precision_at_k(rel, 1), [1, 1])
    np.testing.assert_allclose(m.precision_at_k(rel, 2), [0.5, 1])
    np.testing.assert_allclose(m.precision_at_k(rel, 4), [0.75, 0.5])  # missing hits count against


def test_recall_and_f1(rel):
    np.testing.assert_allclose(m.recall_at_k(rel, N_REL, 4), [1.0, 0.4])
    np.testing.assert_allclose(m.f1_at_k(rel, N_REL, 4), [2 * 0.75 / 1.75, 2 * 0.5 * 0.4 / 0.9])
    np.testing.assert_allclose(m.f1_at_k(rel, N_REL, 2)[0], 2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))


def test_average_precision(rel):
    # q0: relevant at ranks 1, 3, 4 -> (1 + 2/3 + 3/4) / min(4, 3); q1: (1 + 1) / min(4, 5)
    np.testing.assert_allclose(m.average_precision_at_k(rel, N_REL, 4), [(1 + 2 / 3 + 3 / 4) / 3, 0.5])
    np.testing.assert_allclose(m.average_precision_at_k(rel, N_REL, 1), [1.0, 1.0])
    assert m.mean(m.average_precision_at_k(rel, N_REL, 4)) == pytest.approx(((1 + 2 / 3 + 3 / 4) / 3 + 0.5) / 2)


def test_r_precision(rel):
    np.testing.assert_allclose(m.r_precision(rel, np.array([3, 2])), [2 / 3, 1.0])
    with pytest.raises(InvalidArgumentError, match="needs 5 ranked positions"):
        m.r_precision(rel, N_REL)


def test_top1(rel):
    np.testing.assert_allclose(m.top1_accuracy(rel), [1, 1])
    np.testing.assert_allclose(m.top1_accuracy(m.relevance(np.array([[0, 1]]), np.array([1]))), [0])


def test_ties_broken_by_id_padding_last():
    ids = np.array([[5, 3, 9, -1], [2, 1, 0, 4]])
    scores = np.array([[0.9, 0.9, 0.95, -np.inf], [0.5, 0.5, 0.5, 0.5]])
    order = m.order_hits(ids, scores)
    assert np.take_along_axis(ids, order, 1).tolist() == [[9, 3, 5, -1], [0, 1, 2, 4]]


def test_no_relevant_images_is_undefined_not_zero():
    rel = m.relevance(np.array([[3, 3], [1, 3]]), np.array([3, 1]))
    r = m.recall_at_k(rel, np.array([2, 0]), 2)
    assert r[0] == 1.0 and np.isnan(r[1])
    assert m.mean(r) == 1.0
    assert np.isnan(m.average_precision_at_k(rel, np.array([2, 0]), 2)[1])
    assert np.isnan(m.f1_at_k(rel, np.array([2, 0]), 2)[1])


def test_empty_inputs():
    rel = m.relevance(np.zeros((0, 10), int), np.zeros(0, int))
    assert m.precision_at_k(rel, 10).shape == (0,)
    assert m.mean(m.precision_at_k(rel, 10)) is None
    assert m.mean(m.recall_at_k(rel, np.zeros(0), 5)) is None
    assert m.percentiles_ms([]) == {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    assert m.per_class(np.array([1.0, 0.0]), np.array([0, 0]), 3) == [0.5, None, None]


def test_k_validation(rel):
    with pytest.raises(InvalidArgumentError, match="K must be >= 1"):
        m.precision_at_k(rel, 0)
    with pytest.raises(InvalidArgumentError, match="K=5 needs 5 ranked positions"):
        m.precision_at_k(rel, 5)


def test_overlap_and_percentiles():
    np.testing.assert_allclose(m.overlap_at_k(np.array([[1, 2, 3]]), np.array([[3, 2, 7]]), 3), [2 / 3])
    p = m.percentiles_ms([0.001, 0.002, 0.003])
    assert p["p50_ms"] == pytest.approx(2.0)


def test_confusion_matrix_by_hand():
    """Rows: each query class's top-k hits by class; padding not counted; a
    class without queries is None."""
    hits = np.array([[0, 1, 1, 2], [0, 0, m.MISSING, 2], [1, 1, 0, 0]])
    queries = np.array([0, 0, 1])
    rows = m.confusion(hits, queries, n_classes=3, k=3)
    # class 0: hits (0, 1, 1) and (0, 0): 3 of class 0, 2 of class 1 in 5
    assert rows[0] == pytest.approx([3 / 5, 2 / 5, 0])
    assert rows[1] == pytest.approx([1 / 3, 2 / 3, 0])  # hits (1, 1, 0)
    assert rows[2] is None
