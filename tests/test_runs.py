"""The run folder: resume, kill, plan and flags decided from its files.

`pixel_models/runs.py` is pure Python. It is loaded here on its own,
without the package (whose `__init__` imports Keras), so that these
answers take well under 2 s. The expected answers on the copies of
committed runs (`tests/data/runs/`) were recorded from the functions
that answered them before `RunFolder` (the training CLI's
`epochs_trained_before`, `start_history` and `plan_epochs`, the recipes'
`_carried_run_flags` and `run_binarization`, `training.trained_on`).
"""

import importlib.util
import json
import os
import shutil
import sys
import types

import pytest

HERE = os.path.dirname(__file__)
_spec = importlib.util.spec_from_file_location(
    "pixel_models_runs", os.path.join(HERE, "..", "pixel_models", "runs.py")
)
runs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runs)
RunFolder = runs.RunFolder
COMMITTED = os.path.join(HERE, "data", "runs")


def config(**values):
    """The `RunConfig` fields a session is decided from."""
    fields = dict(
        resume=None,
        epochs=10,
        schedule=None,
        restart_learning_rate=None,
        lr_patience=None,
        multiscale=None,
    )
    return types.SimpleNamespace(**{**fields, **values})


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def kill(folder, epoch):
    """As Keras's BackupAndRestore leaves a run killed after `epoch`."""
    write(
        os.path.join(folder, runs.BACKUP, runs.BACKUP_RECORD),
        json.dumps({"epoch": epoch, "batch": 0}),
    )


def history(folder, epochs):
    rows = "".join(
        f"{e},{1.0 - e / 100},{0.1 * (e + 1)},{0.5 + (e == 1)}\n"
        for e in range(epochs)
    )
    write(
        os.path.join(folder, runs.HISTORY),
        "epoch,loss,train_hours,val_loss\n" + rows,
    )


def test_runs_imports_nothing_but_the_standard_library():
    import ast

    tree = ast.parse(open(runs.__file__).read())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported <= set(sys.stdlib_module_names)


def test_a_new_run_starts_at_zero_and_clears_an_old_history(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.killed_after() is None and not folder.finished()
    session = folder.session(config(epochs=4))
    assert (session.kind, session.initial_epoch, session.from_epoch) == (
        "new",
        0,
        0,
    )
    assert session.final_epoch == 4 and session.schedule == {}
    history(tmp_path, 3)  # an earlier run's, in the same folder
    folder.record_flags(["--binarization", "dynamic"])
    folder.record_session(0, "M")
    session = folder.session(config(epochs=4))
    assert session.earlier_hours == 0.0 and session.best_val_loss is None
    plan = folder.begin(session, {"epochs": 4}, 1e-3, "M")
    assert plan == {"final_epoch": 4}
    assert folder.history() == [] and folder.added_flags() == []
    assert folder.first_arguments() == {"epochs": 4}
    assert [s["from_epoch"] for s in folder.sessions()] == [0]
    assert folder.plan() == {"final_epoch": 4}


def test_a_saved_model_trained_on_goes_on_after_its_last_epoch(tmp_path):
    history(tmp_path, 3)
    folder = RunFolder(tmp_path)
    session = folder.session(config(resume="model.keras", epochs=4))
    assert session.kind == "continued"
    assert (session.initial_epoch, session.from_epoch) == (3, 3)
    assert session.final_epoch == 7
    assert session.earlier_hours == pytest.approx(0.3)
    assert session.best_val_loss == 0.5
    # With --resume and no history: from the start.
    empty = RunFolder(tmp_path / "empty")
    assert empty.session(config(resume="m.keras")).initial_epoch == 0


def test_a_killed_run_resumes_to_its_planned_epoch(tmp_path):
    history(tmp_path, 5)
    kill(tmp_path, 5)
    folder = RunFolder(tmp_path)
    write(folder.path(runs.PLANNED_EPOCHS), json.dumps({"final_epoch": 12}))
    assert folder.killed_after() == 5 and not folder.finished()
    session = folder.session(config(epochs=3))
    assert session.kind == "killed"
    assert (session.initial_epoch, session.from_epoch) == (0, 5)
    assert session.final_epoch == 12  # not 3: the killed run's own plan
    assert folder.session(config(epochs=20)).final_epoch == 20
    # --resume: training a saved model on, whatever backup is there.
    assert folder.session(config(resume="m.keras")).kind == "continued"


def test_a_killed_run_without_a_plan_must_have_epochs_left(tmp_path):
    kill(tmp_path, 3)
    folder = RunFolder(tmp_path)
    with pytest.raises(ValueError, match="killed after 3 epochs.*than 3"):
        folder.session(config(epochs=3))
    assert folder.session(config(epochs=5)).final_epoch == 5


def test_a_killed_cosine_run_keeps_its_schedule(tmp_path):
    kill(tmp_path, 2)
    folder = RunFolder(tmp_path)
    planned = {
        "final_epoch": 6,
        "schedule": "cosine",
        "first_epoch": 0,
        "schedule_final_epoch": 6,
        "peak_learning_rate": 0.01,
    }
    write(folder.path(runs.PLANNED_EPOCHS), json.dumps(planned))
    session = folder.session(config(epochs=6))
    assert session.cosine and session.plan(0.5) == planned  # peak kept
    with pytest.raises(ValueError, match="--schedule cosine, so it resumes"):
        folder.session(config(schedule="plateau"))
    with pytest.raises(ValueError, match="leave --lr-patience out"):
        folder.session(config(lr_patience=3))


def test_an_unfinished_cosine_plan_is_kept_unless_restarted(tmp_path):
    history(tmp_path, 4)
    folder = RunFolder(tmp_path)
    write(folder.path(runs.MODEL), "")
    planned = {
        "final_epoch": 4,
        "schedule": "cosine",
        "first_epoch": 0,
        "schedule_final_epoch": 6,
        "peak_learning_rate": 0.01,
    }
    write(folder.path(runs.PLANNED_EPOCHS), json.dumps(planned))
    resume = folder.path(runs.MODEL)
    session = folder.session(config(resume=resume, epochs=9))
    assert session.final_epoch == 6 and session.schedule["first_epoch"] == 0
    # A warm restart begins a new plan, from the optimizer's rate.
    restart = config(
        resume=resume, epochs=4, schedule="cosine", restart_learning_rate=1
    )
    session = folder.session(restart)
    assert (session.initial_epoch, session.final_epoch) == (4, 8)
    assert session.plan(0.003) == {
        "final_epoch": 8,
        "schedule": "cosine",
        "first_epoch": 4,
        "schedule_final_epoch": 8,
        "peak_learning_rate": 0.003,
    }
    # Another file than the run's own model: no plan to go on along.
    other = str(tmp_path / "other.keras")
    write(other, "")
    assert folder.session(config(resume=other, epochs=2)).final_epoch == 6


def test_a_killed_multiscale_stage_gives_the_first_pass_of_its_own(tmp_path):
    """Each stage resumes from its own backup (LOG_DIR/small/backup, not
    LOG_DIR/backup), and its training data go on from its own pass."""
    kill(tmp_path / "small", 3)
    kill(tmp_path, 7)  # a stray backup beside the stages: not theirs
    folder = RunFolder(tmp_path)
    sessions = folder.stage_sessions(config(multiscale=7, epochs=9))
    assert set(sessions) == {"small", "large"}
    assert sessions["small"].kind == "killed"
    assert sessions["small"].from_epoch == 3
    assert sessions["large"].kind == "new"
    assert sessions["large"].from_epoch == 0
    assert folder.stage_sessions(config())[None].from_epoch == 7
    with pytest.raises(ValueError, match="name must be one of"):
        folder.stage("medium")


def test_flags_are_recorded_once_and_data_flags_carried(tmp_path):
    folder = RunFolder(tmp_path)
    folder.record_flags(["--dropout", "0.1"])
    folder.record_flags(["--dropout", "0.1"])  # a killed run resumed
    restart = ["--restart-learning-rate", "3e-4", "--binarization", "dynamic"]
    folder.record_flags(restart)
    folder.record_flags(["--mixed-precision", "float32"])
    assert [r["flags"] for r in folder.added_flags()] == [
        "--dropout 0.1",
        " ".join(restart),
        "--mixed-precision float32",
    ]
    # A later session that names no binarization keeps the run's; the
    # precision is the session's own.
    assert folder.carried_flags(["--epochs", "3"]) == [
        "--binarization",
        "dynamic",
    ]
    named = ["--binarization=stochastic"]
    assert folder.carried_flags(named) == []
    folder.record_flags(named)
    assert folder.added_value("--binarization") == "stochastic"
    assert RunFolder(tmp_path / "new").carried_flags([]) == []
    write(folder.path(runs.RUN_ARGS), json.dumps({"dropout": 0.0}))
    assert folder.arguments() == {
        "dropout": "0.1",
        "restart_learning_rate": "3e-4",
        "binarization": "stochastic",
        "mixed_precision": "float32",
    }


def test_a_run_says_which_machine_trained_which_epochs(tmp_path):
    rows = [{"epoch": e, "train_hours": 0.1 * (e + 1)} for e in range(6)]
    folder = RunFolder(tmp_path)
    # A run whose sessions were not recorded says so.
    assert folder.trained_on(rows) == "not recorded"
    folder.record_session(2, "A")
    folder.record_session(3, "A")  # a second session on A
    assert folder.trained_on(rows[2:]) == "A"
    folder.record_session(4, "B")
    assert folder.trained_on(rows) == (
        "epochs 1-2 (0.20 h): not recorded; epochs 3-4 (0.20 h): A; "
        "epochs 5-6 (0.20 h): B"
    )
    # Up to the kept epoch only.
    assert folder.trained_on(rows[:4]) == (
        "epochs 1-2 (0.20 h): not recorded; epochs 3-4 (0.20 h): A"
    )


# Committed runs, their recipe's settings, whether the last session
# ended, and what `train` decided for the next session before RunFolder.
RECORDED = {
    "diagonal_bilstm_binarized_mnist_dynamic": (
        dict(epochs=100),
        True,
        dict(kind="continued", from_epoch=211, initial_epoch=211),
        {
            "final_epoch": 224,
            "schedule": "cosine",
            "first_epoch": 204,
            "schedule_final_epoch": 224,
            "peak_learning_rate": 0.0003000000142492354,
        },
    ),
    "pixelcnn_binarized_mnist_15x32_bf16_dropout_r3e-4_dynamic_r3e-4": (
        dict(epochs=60, schedule="cosine"),
        False,
        dict(kind="killed", from_epoch=108, initial_epoch=0),
        {
            "final_epoch": 116,
            "schedule": "cosine",
            "first_epoch": 96,
            "schedule_final_epoch": 116,
            "peak_learning_rate": 0.0003000000142492354,
        },
    ),
    "gated_pixelcnn_binarized_mnist_15x16": (
        dict(epochs=80, schedule="cosine"),
        False,
        dict(kind="killed", from_epoch=20, initial_epoch=0),
        {
            "final_epoch": 80,
            "schedule": "cosine",
            "first_epoch": 0,
            "schedule_final_epoch": 80,
            "peak_learning_rate": 0.0020000000949949026,
        },
    ),
    "pixelcnn_binarized_mnist": (
        dict(epochs=60, schedule="cosine"),
        True,
        dict(kind="continued", from_epoch=31, initial_epoch=31),
        {
            "final_epoch": 91,
            "schedule": "cosine",
            "first_epoch": 31,
            "schedule_final_epoch": 91,
            "peak_learning_rate": 0.002,
        },
    ),
}


@pytest.mark.parametrize("run", sorted(RECORDED))
def test_committed_runs_resume_as_before(run, tmp_path):
    recipe, ended, expected, plan = RECORDED[run]
    copy = tmp_path / run
    shutil.copytree(os.path.join(COMMITTED, run), copy)
    folder = RunFolder(copy)
    if ended:  # the model file itself is not needed to decide
        write(folder.path(runs.MODEL), "")
    assert folder.finished() == ended
    resume = folder.path(runs.MODEL) if ended else None
    session = folder.session(config(resume=resume, **recipe))
    assert {key: getattr(session, key) for key in expected} == expected
    assert session.plan(0.002) == plan


def test_committed_runs_answer_as_before():
    dynamic = RunFolder(
        os.path.join(COMMITTED, "diagonal_bilstm_binarized_mnist_dynamic")
    )
    rows = dynamic.history()
    assert len(rows) == 211 and rows[-1]["epoch"] == 210
    assert rows[-1]["train_hours"] == pytest.approx(14.424508662899171)
    best = min(rows, key=lambda row: row["val_loss"])
    assert best["epoch"] == 202
    assert dynamic.best_logged() == best["val_loss"]
    assert dynamic.added_value("--binarization") == "dynamic"
    assert dynamic.carried_flags([]) == ["--binarization", "dynamic"]
    assert dynamic.arguments()["binarization"] == "dynamic"
    assert dynamic.first_arguments()["model"] == "diagonal_bilstm"
    assert dynamic.trained_on(rows) == (
        "epochs 1-204 (13.88 h): not recorded; epochs 205-211 (0.54 h): "
        "Intel(R) Xeon(R) Processor @ 2.80GHz, 2 cores, no GPU"
    )
    killed = RunFolder(
        os.path.join(
            COMMITTED,
            "pixelcnn_binarized_mnist_15x32_bf16_dropout_r3e-4_dynamic_r3e-4",
        )
    )
    assert killed.killed_after() == 108
    assert killed.trained_on(killed.history()) == "AMD EPYC, 2 cores, no GPU"
    old = RunFolder(os.path.join(COMMITTED, "pixelcnn_binarized_mnist"))
    assert old.plan() == {} and old.sessions() == []
    assert old.trained_on(old.history()) == "not recorded"
    assert old.carried_flags([]) == []
    assert old.arguments()["model"] == "pixelcnn"


def test_json_is_written_atomically(tmp_path, monkeypatch):
    path = str(tmp_path / "a" / "record.json")
    runs.write_json(path, {"x": 1})
    assert runs.read_json(path) == {"x": 1}

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runs.json, "dump", fail)
    with pytest.raises(OSError, match="disk full"):
        runs.write_json(path, {"x": 2})
    assert runs.read_json(path) == {"x": 1}  # the old file kept whole
    assert os.listdir(tmp_path / "a") == ["record.json"]
    assert runs.read_json(str(tmp_path / "none.json"), []) == []


def test_a_cell_that_is_no_number_stays_text(tmp_path):
    write(str(tmp_path / runs.HISTORY), "epoch,loss,note\n0,0.5,fast\n")
    assert RunFolder(tmp_path).history() == [
        {"epoch": 0.0, "loss": 0.5, "note": "fast"}
    ]


def test_flag_values_reads_both_spellings():
    words = "--a 1 --b=2 --c --d 3e-4".split()
    assert runs.flag_values(words) == {
        "--a": "1",
        "--b": "2",
        "--c": True,
        "--d": "3e-4",
    }
