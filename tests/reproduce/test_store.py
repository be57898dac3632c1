import contextlib
import os

import pandas as pd
import pytest

from sktopk.reproduce.experiment import RUN_COLUMNS
from sktopk.reproduce.protocol import Cell
from sktopk.reproduce.store import (
    LOCK_NAME,
    MANIFEST_NAME,
    TEMP_PREFIX,
    OutputFolder,
    ResultStore,
    StoreError,
    StoreWarning,
)

CELL = Cell(3, "wisconsin", "logistic", "stk")
LINKS = pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges")
OTHER = Cell(3, "wisconsin", "logistic", "atk")


def _rows(identity="abc", runs=2, cell=CELL):
    data = {c: [0] * runs for c in RUN_COLUMNS}
    data |= {
        "identity": identity, "table": cell.table, "dataset": cell.dataset,
        "loss": cell.loss, "aggregate": cell.aggregate, "run": list(range(runs)),
        "metric": "error_rate_percent", "value": [3.25, 4.125][:runs],
        "diverged": False, "seconds": 0.5,
    }  # fmt: skip
    return pd.DataFrame(data)[list(RUN_COLUMNS)]


def _store(path, identity="abc", runs=2):
    """A store whose folder lock is released at once (one call, one test)."""
    with OutputFolder(path) as folder:
        return ResultStore(folder, identity, runs)


def _two_cells(path) -> bytes:
    store = _store(path)
    store.append(_rows())
    store.append(_rows(cell=OTHER))
    return (path / "runs.csv").read_bytes()


def test_append_then_resume(tmp_path):
    store = _store(tmp_path)
    assert not store.is_complete(CELL)
    store.append(_rows())
    again = _store(tmp_path)
    assert again.is_complete(CELL)
    assert not again.is_complete(OTHER)
    assert again.complete_rows([CELL, OTHER])["value"].tolist() == [3.25, 4.125]


def test_every_row_is_a_whole_line(tmp_path):
    data = _two_cells(tmp_path)
    lines = data.split(b"\n")
    assert data.endswith(b"\n") and lines[-1] == b""
    assert len(lines) - 2 == 4
    assert {line.count(b",") for line in lines[:-1]} == {len(RUN_COLUMNS) - 1}


def test_identity_looking_like_a_number_survives(tmp_path):
    _store(tmp_path, "123456789012").append(_rows("123456789012"))
    assert _store(tmp_path, "123456789012").is_complete(CELL)


def test_other_settings_are_refused_and_the_file_kept(tmp_path):
    _store(tmp_path).append(_rows())
    before = (tmp_path / "runs.csv").read_bytes()
    with pytest.raises(StoreError, match="other settings"):
        _store(tmp_path, "xyz")
    assert (tmp_path / "runs.csv").read_bytes() == before


def test_other_settings_name_the_command_of_their_report(tmp_path):
    _store(tmp_path).append(_rows())
    report = "# Table 3\n\n## Settings\n\n- **command**: `sktopk reproduce --seed 4`\n"
    report += "- **protocol identity**: abc\n\n## Results\n\n- **command**: no\n"
    (tmp_path / "table3.md").write_text(report)
    (tmp_path / "table4.md").write_text(report.replace("abc", "other"))
    with pytest.raises(StoreError) as info:
        _store(tmp_path, "xyz")
    assert "abc was made by `sktopk reproduce --seed 4` (table3.md)." in str(info.value)
    assert "table4.md" not in str(info.value)


@pytest.mark.parametrize(
    "content",
    [
        "name,age\nann,3\n",  # someone else's CSV
        "name,age\nann,3",  # ... without a final newline
        ",".join(RUN_COLUMNS) + "\nabc,3,wisconsin\n",  # cut short
        "\x00\x01\x02garbage\xff\n",
        "\x00\xff\xfe garbage",
        ",".join(RUN_COLUMNS) + '\n"unclosed,\n',
    ],
)
def test_foreign_or_damaged_files_are_refused_and_kept(tmp_path, content):
    path = tmp_path / "runs.csv"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(StoreError, match="left as it is"):
        _store(tmp_path)
    assert path.read_bytes() == content.encode("latin-1")


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


DAMAGES = {
    "cut-line": lambda ls: [ls[0], ls[1][:40] + b"\n", *ls[2:]],
    "glued-lines": lambda ls: [ls[0], ls[1].rstrip(b"\n") + ls[2], *ls[3:]],
    "cut-line-and-cut-end": lambda ls: [ls[0], ls[1][:40] + b"\n", *ls[2:], ls[1][:9]],
    "binary-end": lambda ls: [*ls, b"\x00\x01 not a row"],
    "glued-end": lambda ls: [*ls, ls[1].rstrip(b"\n") + b"," + ls[2].rstrip(b"\n")],
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_damaged_line_is_refused_and_the_file_kept(tmp_path, damage):
    data = b"".join(damage(_lines(_two_cells(tmp_path))))
    (tmp_path / "runs.csv").write_bytes(data)
    with pytest.raises(StoreError, match="damaged|cannot read"):
        _store(tmp_path)
    assert (tmp_path / "runs.csv").read_bytes() == data


@pytest.mark.parametrize("cut", [1, 3, 30], ids=["newline", "in-a-number", "mid"])
def test_an_incomplete_last_line_is_dropped_with_a_warning(tmp_path, cut):
    whole = _two_cells(tmp_path)
    (tmp_path / "runs.csv").write_bytes(whole[:-cut])
    with pytest.warns(StoreWarning, match="last line 5 .* incomplete"):
        store = _store(tmp_path)
    assert store.is_complete(CELL) and not store.is_complete(OTHER)
    store.append(_rows(cell=OTHER))  # the cell run again
    assert (tmp_path / "runs.csv").read_bytes() == whole


@pytest.mark.parametrize("content", ["", "identity,tab", ",".join(RUN_COLUMNS)])
def test_an_empty_or_cut_header_is_started_again(tmp_path, content):
    (tmp_path / "runs.csv").write_text(content)
    expect = pytest.warns(StoreWarning) if content else contextlib.nullcontext()
    with OutputFolder(tmp_path) as folder, expect:
        ResultStore(folder, "abc", 2).append(_rows())
    text = (tmp_path / "runs.csv").read_text()
    assert text.startswith(",".join(RUN_COLUMNS) + "\n") and text.count("\n") == 3


def test_runs_already_on_disk_are_not_written_twice(tmp_path):
    store = _store(tmp_path)
    store.append(_rows(runs=1))
    store.append(_rows())
    store.append(_rows())
    assert (tmp_path / "runs.csv").read_text().count("\n") == 3
    assert _store(tmp_path).complete_rows([CELL])["run"].tolist() == [0, 1]


def test_a_file_changed_behind_the_stores_back_is_not_appended_to(tmp_path):
    store = _store(tmp_path)
    store.append(_rows(runs=1))
    with open(tmp_path / "runs.csv", "ab") as fh:
        fh.write(b"abc,3,wis")  # another writer, mid-line
    before = (tmp_path / "runs.csv").read_bytes()
    with pytest.raises(StoreError, match="changed by another program"):
        store.append(_rows(cell=OTHER))
    assert (tmp_path / "runs.csv").read_bytes() == before


def test_output_path_that_is_a_file(tmp_path):
    target = tmp_path / "out"
    target.write_text("keep me")
    with pytest.raises(StoreError, match="not a folder"):
        OutputFolder(target)
    assert target.read_text() == "keep me"


def test_one_run_per_folder_at_a_time(tmp_path):
    with OutputFolder(tmp_path):
        with pytest.raises(StoreError, match=rf"another .*process {os.getpid()}"):
            OutputFolder(tmp_path)
    with OutputFolder(tmp_path):  # released on close
        pass


@LINKS
@pytest.mark.parametrize("name", ["runs.csv", LOCK_NAME, MANIFEST_NAME])
def test_links_to_files_outside_are_refused(tmp_path, name):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(outside)
    with pytest.raises(StoreError, match="symbolic link"):
        _store(out)
    assert outside.read_text() == "keep me"


def test_write_replaces_only_its_own_unchanged_files(tmp_path):
    with OutputFolder(tmp_path) as folder:
        folder.write("report.md", b"one")
        folder.write("report.md", b"two")  # its own file: replaced
    assert (tmp_path / "report.md").read_bytes() == b"two"
    with OutputFolder(tmp_path) as folder:  # remembered across runs
        folder.write("report.md", b"three")
    (tmp_path / "report.md").write_bytes(b"edited by the user")
    (tmp_path / "notes.md").write_bytes(b"the user's")
    with OutputFolder(tmp_path) as folder:
        for name in ("report.md", "notes.md"):
            with pytest.raises(StoreError, match="not written by sktopk"):
                folder.write(name, b"four")
    assert (tmp_path / "report.md").read_bytes() == b"edited by the user"
    assert (tmp_path / "notes.md").read_bytes() == b"the user's"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


@LINKS
def test_write_never_follows_a_link(tmp_path):
    outside = tmp_path / "outside.md"
    outside.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").symlink_to(outside)
    with OutputFolder(out) as folder:
        with pytest.raises(StoreError, match="symbolic link"):
            folder.write("report.md", b"new")
        with pytest.raises(StoreError, match="symbolic link"):
            folder.check_replaceable(["other.md", "report.md"])
    assert outside.read_text() == "keep me"
    assert (out / "report.md").is_symlink()


@pytest.mark.parametrize("text", ["{not json", '{"files": {"a.md": "x"}}', "[]"])
def test_an_unreadable_manifest_is_refused_and_kept(tmp_path, text):
    with OutputFolder(tmp_path) as folder:
        folder.write("report.md", b"one")
    (tmp_path / MANIFEST_NAME).write_text(text)
    with pytest.raises(StoreError, match="not a list of the files sktopk wrote"):
        OutputFolder(tmp_path)
    assert (tmp_path / MANIFEST_NAME).read_text() == text
    assert (tmp_path / "report.md").read_bytes() == b"one"
    assert not (tmp_path / LOCK_NAME).exists()  # none left by the refused run


def test_temporary_files_of_a_killed_run_are_removed(tmp_path):
    (tmp_path / f"{TEMP_PREFIX}123-0123456789abcdef").write_text("half a report")
    (tmp_path / f"{TEMP_PREFIX}0123456789abcdef").write_text("an older version's")
    (tmp_path / "mine.tmp").write_text("the user's")
    with OutputFolder(tmp_path):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.tmp"]


@pytest.mark.parametrize("name", ["0123", "notes.txt", "12-0123456789ABCDEF"])
def test_files_of_the_user_named_like_temporaries_are_kept(tmp_path, name):
    (tmp_path / f"{TEMP_PREFIX}{name}").write_text("the user's")
    with OutputFolder(tmp_path):
        pass
    assert (tmp_path / f"{TEMP_PREFIX}{name}").read_text() == "the user's"


def test_a_lock_file_of_the_user_is_refused_and_kept(tmp_path):
    (tmp_path / LOCK_NAME).write_text("my notes\n")
    with pytest.raises(StoreError, match="not a lock file of sktopk"):
        OutputFolder(tmp_path)
    assert (tmp_path / LOCK_NAME).read_text() == "my notes\n"


@pytest.mark.parametrize("text", ["", "12210\n", "sktopk lock\n77\n"])
def test_a_lock_file_of_sktopk_is_used_then_removed(tmp_path, text):
    (tmp_path / LOCK_NAME).write_text(text)  # left by a killed run
    with OutputFolder(tmp_path):
        lines = (tmp_path / LOCK_NAME).read_text().splitlines()
        assert lines == ["sktopk lock", str(os.getpid())]
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_file_removed_by_the_run_holding_it_is_not_shared(tmp_path):
    from sktopk.reproduce import store

    first = OutputFolder(tmp_path)
    fd = store._open_lock(tmp_path / LOCK_NAME)  # opened before first closes
    try:
        first.close()  # removes the file it held
        assert not store._same_file(fd, tmp_path / LOCK_NAME)
    finally:
        os.close(fd)
    with OutputFolder(tmp_path), pytest.raises(StoreError, match="another"):
        OutputFolder(tmp_path)


def test_a_broken_link_as_output_folder_is_named(tmp_path):
    (tmp_path / "out").symlink_to(tmp_path / "gone")
    with pytest.raises(StoreError, match="broken symbolic link"):
        OutputFolder(tmp_path / "out")


def test_remove_takes_only_its_own_unchanged_files(tmp_path):
    with OutputFolder(tmp_path) as folder:
        folder.write("a.png", b"one")
        folder.write("b.png", b"two")
    (tmp_path / "b.png").write_bytes(b"edited")
    (tmp_path / "c.png").write_bytes(b"the user's")
    with OutputFolder(tmp_path) as folder:
        assert [folder.remove(n) for n in ("a.png", "b.png", "c.png")] == [
            True, False, False
        ]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png") == [
        "b.png", "c.png"
    ]  # fmt: skip


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with OutputFolder(tmp_path) as folder:
            folder.write("report.md", b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == 0o644


def test_the_writability_probe_survives_another_run_removing_its_file(
    tmp_path, monkeypatch
):
    # Another run, holding the lock, removes temporary files it takes for
    # stale, the probe's among them, between its creation and its removal.
    from sktopk.reproduce import store

    real = store._create_temp

    def removed_at_once(folder):
        fd, name = real(folder)
        os.unlink(name)
        return fd, name

    monkeypatch.setattr(store, "_create_temp", removed_at_once)
    with store.OutputFolder(tmp_path / "out") as folder:
        assert folder.path.is_dir()
