import dataclasses

import numpy as np
import pandas as pd
import pytest

from sktopk.reproduce import experiment, make_protocol, select_configuration
from sktopk.reproduce.protocol import Cell
from sktopk.reproduce.splits import encode_target, make_splits, prepare, run_seeds

TINY = make_protocol("quick", runs=2, max_epochs=2)


def test_selection_uses_the_mean_over_runs():
    val = np.array([[0.9, 0.5, 0.7], [0.4, 0.8, 0.7]])
    # Best single score is config 0 (0.9), best mean is config 2 (0.7).
    assert select_configuration(val) == 2


def test_selection_never_picks_non_finite_and_breaks_ties_first():
    val = np.array([[np.nan, 0.5, 0.5], [1.0, 0.5, 0.5]])
    assert select_configuration(val) == 1
    assert select_configuration(np.array([[np.inf, 0.1]])) == 1


def test_selection_ignores_the_test_split(monkeypatch):
    """Scrambling the test targets changes the test error, never the choice."""
    cell = Cell(3, "appendicitis", "logistic", "stk")
    clean = experiment.run_cell(cell, TINY, seed=0)
    real_prepare = experiment.prepare

    def poisoned(*args, **kwargs):
        prep = real_prepare(*args, **kwargs)
        for test in prep.test:
            prep.target[test] = -prep.target[test]
        return prep

    monkeypatch.setattr(experiment, "prepare", poisoned)
    dirty = experiment.run_cell(cell, TINY, seed=0)
    chosen = ["kappa", "C", "lr", "delta", "val_score", "epochs"]
    assert dirty[chosen].equals(clean[chosen])
    np.testing.assert_allclose(dirty["value"], 100 - clean["value"], atol=1e-4)


def test_run_cell_rows_and_determinism():
    cell = Cell(6, "housing", "square", "matk")
    a = experiment.run_cell(cell, TINY, seed=3)
    b = experiment.run_cell(cell, TINY, seed=3)
    assert list(a.columns) == list(experiment.RUN_COLUMNS)
    assert len(a) == 2 and (a["metric"] == "rmse_target_scaled_0_1").all()
    assert (a["value"] > 0).all() and (a["value"] < 1).all()
    cols = [c for c in a.columns if c != "seconds"]
    assert a[cols].equals(b[cols])


def test_splits_are_50_25_25_disjoint_and_stratified():
    y = np.array([0] * 80 + [1] * 40)
    tr, va, te = make_splits(y, "classification", seed=1)
    assert (len(tr), len(va), len(te)) == (60, 30, 30)
    assert len(np.unique(np.concatenate([tr, va, te]))) == 120
    assert y[tr].mean() == pytest.approx(1 / 3)
    assert y[te].mean() == pytest.approx(1 / 3)


def test_seeds_depend_on_the_dataset_and_seed_only():
    assert run_seeds(0, "german", 3) == run_seeds(0, "german", 5)[:3]
    assert run_seeds(0, "german", 3) != run_seeds(0, "titanic", 3)
    assert run_seeds(0, "german", 3) != run_seeds(1, "german", 3)


def test_targets_and_scaling():
    assert set(encode_target(np.array([2, 4, 4]), "classification")) == {-1.0, 1.0}
    t = encode_target(np.array([5.0, 50.0, 20.0]), "regression")
    np.testing.assert_allclose(t, [0.0, 1.0, 1 / 3], rtol=1e-6)
    prep = prepare("housing", runs=2, seed=0, scaling="standard")
    assert prep.X.shape == (2 * 506, 13) and prep.n_train == 253
    for train in prep.train:
        np.testing.assert_allclose(prep.X[train].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(prep.X[train].std(0), 1, atol=1e-4)
    raw = prepare("housing", runs=1, seed=0, scaling="none")
    assert raw.X[:, 9].max() > 100  # TAX, untouched
    assert 0.0 <= prep.target.min() and prep.target.max() == 1.0


def test_member_chunks_cover_the_grid():
    cell = Cell(3, "appendicitis", "logistic", "average")
    tight = dataclasses.replace(TINY, max_memory=30_000)  # one member per run
    assert experiment.members_at_once(cell, tight) == TINY.runs
    chunked = experiment.run_cell(cell, tight, seed=0)
    whole = experiment.run_cell(cell, TINY, seed=0)
    assert experiment.members_at_once(cell, TINY) > TINY.runs
    cols = ["value", "val_score", "C", "lr"]
    pd.testing.assert_frame_equal(chunked[cols], whole[cols], rtol=1e-6)


@pytest.mark.parametrize("aggregate", ["average", "maximum", "atk", "matk", "stk"])
def test_every_aggregate_learns_in_a_grid(aggregate):
    """Several configurations per run train (wisconsin is easy: ~3% error)."""
    protocol = make_protocol("quick", runs=2, max_epochs=5, k=(0.5, 1.0), C=(1e3,))
    rows = experiment.run_cell(Cell(3, "wisconsin", "logistic", aggregate), protocol, 0)
    assert rows["value"].mean() < 10
