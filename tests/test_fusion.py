"""RRF and DBSF on hand-made lists."""

from __future__ import annotations

import pytest

from fmsearch.errors import InvalidArgumentError
from fmsearch.search.fusion import dbsf, fuse_lists, rrf


def test_rrf_hand_computed():
    a = [(1, 0.9), (2, 0.8), (3, 0.7)]
    b = [(3, 0.95), (1, 0.5)]
    fused = dict(rrf([a, b], k=60))
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2] == pytest.approx(1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert [pid for pid, _ in rrf([a, b])] == [1, 3, 2]


def test_rrf_ties_broken_by_id_and_disjoint_lists():
    # disjoint lists: rank 1 of each ties, then rank 2 of each
    fused = rrf([[(7, 1.0), (9, 0.5)], [(4, 0.1), (8, 0.0)]])
    assert [pid for pid, _ in fused] == [4, 7, 8, 9]
    assert fused[0][1] == fused[1][1]


def test_one_empty_list_changes_nothing():
    a = [(5, 0.9), (6, 0.4), (2, 0.1)]
    assert [p for p, _ in rrf([a, []])] == [5, 6, 2]
    assert [p for p, _ in dbsf([a, []])] == [5, 6, 2]
    assert rrf([[], []]) == [] and dbsf([[], []]) == []


def test_weights():
    a, b = [(1, 1.0), (2, 0.0)], [(2, 1.0), (1, 0.0)]
    assert [p for p, _ in rrf([a, b], weights=[2, 1])] == [1, 2]
    assert [p for p, _ in rrf([a, b], weights=[1, 2])] == [2, 1]
    with pytest.raises(InvalidArgumentError, match="weights"):
        rrf([a, b], weights=[1])
    with pytest.raises(InvalidArgumentError, match=">= 0"):
        dbsf([a, b], weights=[1, -1])


def test_dbsf_hand_computed():
    a = [(1, 0.9), (2, 0.6), (3, 0.3)]  # mean 0.6, std sqrt(0.06)
    b = [(3, 10.0), (4, 10.0)]  # constant list: every id gets 0.5
    fused = dict(dbsf([a, b]))
    std = (0.06) ** 0.5
    lo, hi = 0.6 - 3 * std, 0.6 + 3 * std
    assert fused[1] == pytest.approx((0.9 - lo) / (hi - lo))
    assert fused[2] == pytest.approx(0.5)
    assert fused[3] == pytest.approx((0.3 - lo) / (hi - lo) + 0.5)
    assert fused[4] == pytest.approx(0.5)
    # scale of a list does not matter, only its distribution
    scaled = dict(dbsf([[(p, 100 * s) for p, s in a], b]))
    assert all(scaled[p] == pytest.approx(fused[p]) for p in fused)


def test_unknown_fusion():
    with pytest.raises(InvalidArgumentError, match="rrf, dbsf"):
        fuse_lists("sum", [[(1, 1.0)]])
