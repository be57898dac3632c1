import pandas as pd
import pytest

from sktopk.reproduce.experiment import RUN_COLUMNS
from sktopk.reproduce.protocol import Cell
from sktopk.reproduce.store import ResultStore, StoreError

CELL = Cell(3, "wisconsin", "logistic", "stk")


def _rows(identity="abc", runs=2, cell=CELL):
    data = {c: [0] * runs for c in RUN_COLUMNS}
    data |= {
        "identity": identity, "table": cell.table, "dataset": cell.dataset,
        "loss": cell.loss, "aggregate": cell.aggregate, "run": list(range(runs)),
        "metric": "error_rate_percent", "value": [3.0, 4.0][:runs], "diverged": False,
    }  # fmt: skip
    return pd.DataFrame(data)[list(RUN_COLUMNS)]


def test_append_then_resume(tmp_path):
    store = ResultStore(tmp_path, "abc", runs=2)
    assert not store.is_complete(CELL)
    store.append(_rows())
    again = ResultStore(tmp_path, "abc", runs=2)
    assert again.is_complete(CELL)
    other = Cell(3, "wisconsin", "logistic", "atk")
    assert not again.is_complete(other)
    assert again.complete_rows([CELL, other])["value"].tolist() == [3.0, 4.0]


def test_identity_looking_like_a_number_survives(tmp_path):
    ResultStore(tmp_path, "123456789012", runs=2).append(_rows("123456789012"))
    assert ResultStore(tmp_path, "123456789012", runs=2).is_complete(CELL)


def test_other_settings_are_refused_and_the_file_kept(tmp_path):
    ResultStore(tmp_path, "abc", runs=2).append(_rows())
    before = (tmp_path / "runs.csv").read_bytes()
    with pytest.raises(StoreError, match="other settings"):
        ResultStore(tmp_path, "xyz", runs=2)
    assert (tmp_path / "runs.csv").read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [
        "name,age\nann,3\n",  # someone else's CSV
        ",".join(RUN_COLUMNS) + "\nabc,3,wisconsin\n",  # cut short
        "\x00\x01\x02garbage\xff\n",
        ",".join(RUN_COLUMNS) + '\n"unclosed,\n',
    ],
)
def test_foreign_or_damaged_files_are_refused_and_kept(tmp_path, content):
    path = tmp_path / "runs.csv"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(StoreError, match="left as it is"):
        ResultStore(tmp_path, "abc", runs=2)
    assert path.read_bytes() == content.encode("latin-1")


def test_output_path_that_is_a_file(tmp_path):
    target = tmp_path / "out"
    target.write_text("keep me")
    with pytest.raises(StoreError, match="not a folder"):
        ResultStore(target, "abc", runs=2)
    assert target.read_text() == "keep me"
