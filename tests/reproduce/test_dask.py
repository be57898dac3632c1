"""The Dask backend (the ``dask`` extra): skipped with a reason without it."""

import pandas as pd
import pytest

from sktopk.reproduce import backends
from sktopk.reproduce.cli import main

distributed = pytest.importorskip(
    "distributed", reason="the dask backend needs dask.distributed (the [dask] extra)"
)

ARGS = ["reproduce", "--table", "6", "--datasets", "housing", "--runs", "2",
        "--max-epochs", "2", "--quiet", "--no-plots"]  # fmt: skip


def _runs(out) -> pd.DataFrame:
    frame = pd.read_csv(out / "runs.csv", dtype={"identity": str})
    key = ["dataset", "loss", "aggregate", "run"]
    return frame.drop(columns="seconds").sort_values(key).reset_index(drop=True)


@pytest.mark.parametrize("processes", [False, True])
def test_dask_gives_the_local_results(tmp_path, processes):
    local, remote = tmp_path / "local", tmp_path / "dask"
    assert main(ARGS + ["--jobs", "1", "--out", str(local)]) == 0
    with distributed.LocalCluster(
        n_workers=2 if processes else 1, threads_per_worker=1,
        processes=processes, dashboard_address=None,
    ) as cluster:  # fmt: skip
        argv = ARGS + ["--backend", "dask", "--scheduler", cluster.scheduler_address]
        assert main(argv + ["--out", str(remote)]) == 0
    pd.testing.assert_frame_equal(_runs(remote), _runs(local))
    a = pd.read_csv(local / "table6_comparison.csv")
    b = pd.read_csv(remote / "table6_comparison.csv")
    pd.testing.assert_frame_equal(a, b)


def test_unreachable_scheduler(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(backends, "CONNECT_TIMEOUT", "1s")
    argv = ARGS + ["--jobs", "1", "--out", str(tmp_path), "--backend", "dask",
                   "--scheduler", "tcp://127.0.0.1:9"]  # fmt: skip
    assert main(argv) == 2
    assert "cannot connect to the Dask scheduler" in capsys.readouterr().err
