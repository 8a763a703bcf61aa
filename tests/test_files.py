"""staged_dir: a folder appears whole or not at all."""

from __future__ import annotations

import pytest

from bell_edge.errors import InputError
from bell_edge.files import staged_dir


def test_a_completed_block_replaces_the_folder_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with staged_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
        assert not (out / "new.txt").exists()  # nothing visible before the block ends
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert out.stat().st_mode & 0o055  # readable by others, not mkdtemp's 0700


def test_a_failed_block_leaves_the_old_folder_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_dir(out) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_file_replaces_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    from bell_edge.files import staged_file, write_json

    path = tmp_path / "sub" / "report.json"
    write_json(path, {"a": 1})
    assert path.read_text() == '{\n "a": 1\n}\n'
    with pytest.raises(RuntimeError), staged_file(path) as tmp:
        assert tmp.suffix == ".json" and tmp.parent == path.parent
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == '{\n "a": 1\n}\n'
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]
    assert path.stat().st_mode & 0o044  # not mkstemp's 0600


def test_resumable_keeps_the_part_for_the_next_attempt_then_publishes_it(tmp_path):
    from bell_edge.files import resumable

    target = tmp_path / "rec.dat"
    with pytest.raises(ConnectionError), resumable(target) as part:
        part.write_bytes(b"half")
        raise ConnectionError("dropped")
    assert not target.exists() and (tmp_path / "rec.dat.part").read_bytes() == b"half"
    with resumable(target) as part, part.open("ab") as sink:
        sink.write(b" and the rest")
    assert target.read_bytes() == b"half and the rest"
    assert [p.name for p in tmp_path.iterdir()] == ["rec.dat"]


def test_appending_log_lines_are_in_the_file_as_soon_as_written(tmp_path):
    from bell_edge.files import appending

    log = tmp_path / "metrics.jsonl"
    log.write_text("old\n")
    with appending(log) as f:
        f.write("one\n")
        assert log.read_text() == "old\none\n"  # line-buffered: on disk before the block ends
    with appending(log, fresh=True) as f:
        f.write("new\n")
    assert log.read_text() == "new\n"


def test_a_file_where_an_output_folder_goes_is_refused_in_one_line(tmp_path, ptbxl_cache):
    from click.testing import CliRunner

    from bell_edge.cli import main

    target = tmp_path / "out"
    target.write_text("keep me")
    commands = [
        ["data", "prepare", str(ptbxl_cache.root), "--out"],
        ["pretrain", "--data", str(ptbxl_cache.root), "--out"],
        ["finetune", "--data", str(ptbxl_cache.root), "--scratch", "--out"],
    ]
    for args in commands:
        for force in ([], ["--force"]):
            result = CliRunner().invoke(main, [*args, str(target), *force])
            assert result.exit_code == 2, (args, result.output)
            assert result.stderr.strip() == f"error: {target}: is a file, not a folder"
    assert target.read_text() == "keep me"
    with pytest.raises(InputError, match="is a file"), staged_dir(target):
        pass


def test_a_resumable_job_claims_only_folders_it_wrote(tmp_path):
    from bell_edge.files import CLAIMED, claim_folder

    fresh = tmp_path / "fresh"
    claim_folder(fresh, force=False)
    (fresh / "results.json").write_text("{}")
    claim_folder(fresh, force=False)  # its own folder again: reused
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(InputError, match="was not written by bell-edge"):
        claim_folder(foreign, force=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]
    claim_folder(foreign, force=True)
    assert (foreign / CLAIMED).is_file() and (foreign / "thesis.tex").read_text() == "keep me"


def test_experiment_and_demo_refuse_a_foreign_out_before_any_work(tmp_path, ptbxl100):
    from click.testing import CliRunner

    from bell_edge.cli import main

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    commands = [
        ["experiment", "label-efficiency", "--data", str(ptbxl100), "--init",
         "bell=bell-corpus2k-v1", "--out"],
        ["demo", "--data", str(ptbxl100), "--out"],
    ]  # fmt: skip
    for args in commands:
        result = CliRunner().invoke(main, [*args, str(foreign)])
        assert result.exit_code == 2 and "use --force" in result.stderr, result.output
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_a_failed_block_removes_only_an_output_folder_it_created_without_work(tmp_path):
    from bell_edge.files import CLAIMED, tidied_on_failure

    created = tmp_path / "created"
    with pytest.raises(InputError), tidied_on_failure(created):
        (created / "stage").mkdir(parents=True)
        (created / CLAIMED).write_text("")
        raise InputError("bad input found after the folder was made")
    assert not created.exists()

    with_work = tmp_path / "with_work"  # a checkpoint to --resume from stays
    with pytest.raises(KeyboardInterrupt), tidied_on_failure(with_work):
        (with_work / "stage").mkdir(parents=True)
        (with_work / "stage" / "checkpoint.pt").write_bytes(b"state")
        raise KeyboardInterrupt
    assert (with_work / "stage" / "checkpoint.pt").is_file()

    nested = tmp_path / "a" / "b" / "c"  # missing parents made on the way go too
    with pytest.raises(InputError), tidied_on_failure(nested):
        nested.mkdir(parents=True)
        raise InputError("bad")
    assert not (tmp_path / "a").exists()

    existing = tmp_path / "existing"  # the user's empty folder is theirs
    existing.mkdir()
    with pytest.raises(InputError), tidied_on_failure(existing):
        raise InputError("bad")
    assert existing.is_dir()

    with tidied_on_failure(tmp_path / "fine"):  # success keeps whatever was made, empty too
        (tmp_path / "fine").mkdir()
    assert (tmp_path / "fine").is_dir()


def test_a_command_that_fails_on_bad_input_leaves_no_output_folder(tmp_path, ptbxl100):
    from click.testing import CliRunner

    from bell_edge.cli import main

    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "finetune", "--data", str(ptbxl100), "--scratch", "--out", str(out),
        "--subset", str(tmp_path / "missing.json"),
    ])  # fmt: skip
    assert result.exit_code == 2 and "missing.json" in result.stderr, result.output
    assert not out.exists()
