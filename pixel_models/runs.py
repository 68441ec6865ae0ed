"""A training run's folder: its files, and the questions asked of them.

A run trains in one folder (`--log-dir`) across sessions: a new run, a
run killed part-way and resumed (Keras's `BackupAndRestore`), a run that
ended and is trained on (`--resume LOG_DIR/model.keras`). `RunFolder`
alone knows the folder's file names (the constants below) and formats,
reads and writes them (JSON through `write_json`, atomically), and
answers: was the run killed, and after which epoch; the history rows;
the flags each session added; the plan of epochs and learning rate; the
machines that trained it. `RunFolder.session(config)` works out, once
and before any data is loaded, where this session goes on from and to
(a frozen `Session`).

Pure Python: nothing here imports Keras, so the answers are cheap to ask
and to test.
"""

import contextlib
import csv
import dataclasses
import datetime
import json
import os

# The files of a run folder (see `RunFolder`).
HISTORY = "history.csv"  # CSVLogger: one row an epoch, across sessions
RUN_ARGS = "run_args.json"  # the arguments of the run's first session
ADDED_FLAGS = "added_flags.json"  # flags later sessions added, in order
SESSIONS = "sessions.json"  # each session's first epoch and machine
PLANNED_EPOCHS = "planned_epochs.json"  # last epoch, learning-rate plan
RESULTS = "results.json"  # the trained model's test figures
MODEL = "model.keras"  # the model at the end of the last session
BEST = os.path.join("checkpoints", "best.keras")  # lowest validation loss
BACKUP = "backup"  # BackupAndRestore's folder: there while killed
BACKUP_RECORD = "training_metadata.json"  # BackupAndRestore's own record
TENSORBOARD = "tensorboard"
# The stage folders of a Multi-Scale run, each a run folder itself.
STAGES = ("small", "large")

# Flags that describe the run's data, not one session's: a session that
# does not name them goes on with the value an earlier session added.
RUN_FLAGS = ("--binarization",)


def partial_path(path):
    """Where a file is written before it is renamed over `path`:
    `NAME.partial.EXT` beside it (Keras infers a model's format from its
    extension, so the extension stays last)."""
    root, ext = os.path.splitext(os.fspath(path))
    return f"{root}.partial{ext}"


@contextlib.contextmanager
def replacing(path):
    """Yields a path to write `path`'s new content to; renames it over
    `path` when the block ends without an error (`os.replace` is atomic
    on POSIX and Windows), so a crash never leaves half a file."""
    partial = partial_path(path)
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    try:
        yield partial
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def write_json(path, value):
    """Writes `value` to `path` as indented JSON, atomically."""
    with replacing(path) as partial:
        with open(partial, "w") as f:
            json.dump(value, f, indent=2)
            f.write("\n")


def read_json(path, default=None):
    """The JSON value in `path`, or `default` where there is no file."""
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def flag_values(words):
    """`{flag: value}` of a list of command-line words (`--flag value` or
    `--flag=value`; a flag followed by another, or last: True)."""
    values = {}
    for i, word in enumerate(words):
        if not word.startswith("--"):
            continue
        flag, _, value = word.partition("=")
        if not value:
            following = words[i + 1] if i + 1 < len(words) else "--"
            value = True if following.startswith("--") else following
        values[flag] = value
    return values


@dataclasses.dataclass(frozen=True)
class Session:
    """Where one session of a run goes on from and to.

    Attributes:
        kind: "new" (a run starting), "killed" (a run killed part-way,
            resumed from its backup) or "continued" (a saved model trained
            on with `--resume`).
        initial_epoch: `model.fit`'s `initial_epoch` (0 for a killed run:
            `BackupAndRestore` skips its epochs itself).
        from_epoch: the epochs trained before this session; the first
            training pass of this session has this index (the data's
            `first_pass`).
        final_epoch: the epoch to train to (`model.fit`'s `epochs`).
        schedule: the planned learning rate (`schedule`, `first_epoch`,
            `schedule_final_epoch`, `peak_learning_rate`; a peak of None
            is the optimizer's rate when training begins), or `{}` for
            the plateau schedule.
        earlier_hours: hours of training before this session.
        best_val_loss: the lowest validation loss of earlier sessions
            (None if none).
    """

    kind: str
    initial_epoch: int
    from_epoch: int
    final_epoch: int
    schedule: dict
    earlier_hours: float = 0.0
    best_val_loss: float | None = None

    @property
    def cosine(self):
        return self.schedule.get("schedule") == "cosine"

    def plan(self, learning_rate):
        """The `PLANNED_EPOCHS` record of this session, a new schedule's
        peak set to `learning_rate` (the optimizer's)."""
        schedule = dict(self.schedule)
        if schedule and schedule.get("peak_learning_rate") is None:
            schedule["peak_learning_rate"] = learning_rate
        return {"final_epoch": self.final_epoch, **schedule}


class RunFolder:
    """The folder of one training run, the one reader and writer of it.

    Args:
        log_dir: the run folder (`--log-dir`); need not exist yet.
    """

    def __init__(self, log_dir):
        self.log_dir = os.fspath(log_dir)

    def __repr__(self):
        return f"RunFolder({self.log_dir!r})"

    def path(self, name):
        """The path of the folder's file `name` (one of the constants)."""
        return os.path.join(self.log_dir, name)

    def stage(self, name):
        """The run folder of a Multi-Scale stage (`STAGES`)."""
        if name not in STAGES:
            raise ValueError(
                f"name must be one of {STAGES}. Received: name={name!r}"
            )
        return RunFolder(self.path(name))

    # -- questions ------------------------------------------------------

    def killed_after(self):
        """The epochs a run killed part-way had trained (its
        `BackupAndRestore` record), or None where no run was killed."""
        record = read_json(os.path.join(self.path(BACKUP), BACKUP_RECORD))
        return None if record is None else int(record["epoch"])

    def has_model(self):
        """Whether a session ended and saved `MODEL`."""
        return os.path.isfile(self.path(MODEL))

    def finished(self):
        """Whether the last session ended (its model saved, no backup of
        a killed run left)."""
        return self.has_model() and self.killed_after() is None

    def history(self):
        """The rows of `HISTORY` as dicts of floats (empty cells left
        out); an empty list where there is no history."""
        path = self.path(HISTORY)
        if not os.path.exists(path):
            return []
        with open(path, newline="") as f:
            return [
                {key: _number(value) for key, value in row.items() if value}
                for row in csv.DictReader(f)
            ]

    def last_logged(self, column):
        """The last row's value of `column` (0.0 if none)."""
        rows = self.history()
        return rows[-1].get(column, 0.0) if rows else 0.0

    def best_logged(self, column="val_loss"):
        """The lowest value of `column` in the history (None if none)."""
        return _lowest(self.history(), column)

    def best_checkpoint(self):
        """`(path, rows)`: the best checkpoint and the history rows.

        Raises:
            FileNotFoundError: the run has no finished epoch yet.
        """
        best, rows = self.path(BEST), self.history()
        if not rows or not os.path.isfile(best):
            raise FileNotFoundError(
                f"The run in {self.log_dir!r} has no finished epoch yet (no "
                f"history rows or no {BEST}): train it first."
            )
        return best, rows

    def plan(self):
        """The `PLANNED_EPOCHS` record (`{}`: none)."""
        return read_json(self.path(PLANNED_EPOCHS), {})

    def results(self):
        """The `RESULTS` record (None: the run was not scored yet)."""
        return read_json(self.path(RESULTS))

    def first_arguments(self):
        """The arguments of the run's first session (`RUN_ARGS`), a dict,
        or None for a folder without them."""
        return read_json(self.path(RUN_ARGS))

    def added_flags(self):
        """The records of `record_flags`, in order (`from_epoch`,
        `images_seen`, `flags`)."""
        return read_json(self.path(ADDED_FLAGS), [])

    def added_value(self, flag):
        """The value of `flag` in the last added record that names it,
        or None."""
        for record in reversed(self.added_flags()):
            value = flag_values(record["flags"].split()).get(flag)
            if value is not None:
                return value
        return None

    def arguments(self):
        """The run's arguments as they stand after every session: the
        first session's (none where the folder has no `RUN_ARGS`), each
        added flag over them (flag names as argument names, values as
        typed on the command line)."""
        arguments = self.first_arguments() or {}
        for record in self.added_flags():
            for flag, value in flag_values(record["flags"].split()).items():
                arguments[flag[2:].replace("-", "_")] = value
        return arguments

    def carried_flags(self, flags):
        """The `RUN_FLAGS` that earlier sessions added and `flags` leave
        out, with their last values, as command-line words."""
        named = flag_values(flags)
        carried = []
        for flag in RUN_FLAGS:
            value = self.added_value(flag)
            if flag not in named and value is not None:
                carried += [flag, value]
        return carried

    def sessions(self):
        """The records of `record_session`, in order."""
        return read_json(self.path(SESSIONS), [])

    def trained_on(self, rows):
        """Which machine trained the epochs of history `rows`: one
        machine's line if one trained them all, else each machine with
        its epochs and hours; epochs before the first record are "not
        recorded"."""
        records = self.sessions()
        spans = []  # [machine, first epoch, last epoch, hours]
        hours = 0.0
        for row in rows:
            epoch = int(row["epoch"])
            name = "not recorded"
            for record in records:
                if record["from_epoch"] <= epoch:
                    name = record["machine"]
            if not spans or spans[-1][0] != name:
                spans.append([name, epoch, epoch, 0.0])
            spans[-1][2] = epoch
            spans[-1][3] += row["train_hours"] - hours
            hours = row["train_hours"]
        if len(spans) == 1:
            return spans[0][0]
        return "; ".join(
            f"epochs {first + 1}-{last + 1} ({spent:.2f} h): {name}"
            for name, first, last, spent in spans
        )

    # -- the session ----------------------------------------------------

    def session(self, config):
        """Where the session `config` describes goes on from and to.

        `config` needs `resume`, `epochs`, `schedule`,
        `restart_learning_rate` and `lr_patience` (a `RunConfig`).

        Raises:
            ValueError: a killed run asked to change its schedule, a
                killed run without a plan whose `epochs` would train
                nothing, or `lr_patience` on a cosine schedule.
        """
        killed = None if config.resume else self.killed_after()
        rows = self.history()
        if killed is not None:
            kind, initial, start = "killed", 0, killed
            final = self._killed_final_epoch(killed, config.epochs)
            schedule = self._killed_schedule(config.schedule)
        else:
            initial = (
                int(rows[-1]["epoch"]) + 1 if config.resume and rows else 0
            )
            kind, start = ("continued" if config.resume else "new"), initial
            final = initial + config.epochs
            schedule = self._unfinished_schedule(config, initial)
            if schedule:
                final = schedule["schedule_final_epoch"]
            elif config.schedule == "cosine":
                schedule = _cosine(initial, final)
        check_lr_patience(config.lr_patience, schedule.get("schedule"))
        keep = kind != "new"  # a new run in an old folder starts afresh
        hours = rows[-1].get("train_hours", 0.0) if keep and rows else 0.0
        return Session(
            kind=kind,
            initial_epoch=initial,
            from_epoch=start,
            final_epoch=final,
            schedule=schedule,
            earlier_hours=hours,
            best_val_loss=_lowest(rows, "val_loss") if keep else None,
        )

    def stage_sessions(self, config):
        """`{stage: Session}` of every folder the run trains in: this
        folder's (key None), or a Multi-Scale run's (`config.multiscale`
        set) stage folders', each resumed from its own backup."""
        if config.multiscale is None:
            return {None: self.session(config)}
        return {name: self.stage(name).session(config) for name in STAGES}

    def _killed_final_epoch(self, killed, epochs):
        """The epoch a run killed after epoch `killed` trains to: the
        planned one (a larger `epochs` goes further); with no plan (an
        older run), `epochs`, which must be past `killed`."""
        planned = self.plan()
        if planned:
            return max(int(planned["final_epoch"]), epochs)
        if killed >= epochs:
            raise ValueError(
                f"{self.path(BACKUP)} holds a run killed after {killed} "
                f"epochs, and --epochs {epochs} counts from the run's start, "
                f"so resuming it would train nothing. Give --epochs the "
                f"total to reach (more than {killed})."
            )
        return epochs

    def _killed_schedule(self, wanted):
        """The schedule a killed run started on; ValueError when
        `wanted` names another one."""
        planned = self.plan()
        started = planned.get("schedule", "plateau")
        if wanted is not None and wanted != started:
            raise ValueError(
                f"{self.path(BACKUP)} holds a run killed part-way that "
                f"trained with --schedule {started}, so it resumes on it: "
                f"rerun without --schedule {wanted} (or with --schedule "
                f"{started}), then change it once the run has ended."
            )
        return _schedule_keys(planned)

    def _unfinished_schedule(self, config, initial_epoch):
        """The cosine schedule a run trained on from `MODEL` goes on
        along, or `{}`: kept unless `restart_learning_rate` or the
        plateau schedule begins a new one, or the plan has run out."""
        saved = self.path(MODEL)
        if (
            not config.resume
            or config.restart_learning_rate is not None
            or config.schedule == "plateau"
            or not os.path.exists(saved)
            or not os.path.isfile(config.resume)  # loading it says why
            or not os.path.samefile(config.resume, saved)
        ):
            return {}
        planned = self.plan()
        if planned.get("schedule") != "cosine":
            return {}
        if planned["schedule_final_epoch"] <= initial_epoch:
            return {}
        return _schedule_keys(planned)

    # -- writing ----------------------------------------------------------

    def begin(self, session, arguments, learning_rate, machine):
        """Writes down the session before it trains: clears the records
        of an earlier run (a new run in an old folder: its history,
        sessions, added flags, results), records the session and its
        plan, and a new run's arguments (a dict).

        Returns:
            The plan written (`Session.plan`).
        """
        os.makedirs(self.path(os.path.dirname(BEST)), exist_ok=True)
        if session.kind == "new":
            for name in (HISTORY, SESSIONS, ADDED_FLAGS, RESULTS):
                if os.path.exists(self.path(name)):
                    os.remove(self.path(name))
        self.record_session(session.from_epoch, machine)
        if session.kind == "new":
            write_json(self.path(RUN_ARGS), arguments)
        plan = session.plan(learning_rate)
        write_json(self.path(PLANNED_EPOCHS), plan)
        return plan

    def record_session(self, from_epoch, machine):
        """Appends to `SESSIONS` that training goes on from epoch
        `from_epoch` (0-based) on `machine` (a line), now."""
        now = datetime.datetime.now(datetime.timezone.utc)
        self._append(
            SESSIONS,
            {
                "from_epoch": int(from_epoch),
                "machine": machine,
                "started": now.replace(microsecond=0).isoformat(),
            },
        )

    def record_flags(self, flags):
        """Appends the flags a session added to the recipe's to
        `ADDED_FLAGS`, with the epoch and images the run had reached;
        the same flags as the last record's add nothing."""
        records = self.added_flags()
        if records and records[-1]["flags"] == " ".join(flags):
            return
        rows = self.history()
        self._append(
            ADDED_FLAGS,
            {
                "from_epoch": int(rows[-1]["epoch"]) + 1 if rows else 0,
                "images_seen": int(rows[-1].get("images_seen", 0))
                if rows
                else 0,
                "flags": " ".join(flags),
            },
        )

    def write_results(self, results):
        """Writes the trained model's figures to `RESULTS`."""
        write_json(self.path(RESULTS), results)

    def _append(self, name, record):
        write_json(self.path(name), [*read_json(self.path(name), []), record])


def _lowest(rows, column):
    """The lowest value of `column` in history `rows` (None if none)."""
    values = [row[column] for row in rows if column in row]
    return min(values) if values else None


def _number(text):
    """A history cell as a float (CSVLogger writes numbers; anything else
    a callback logged stays text)."""
    try:
        return float(text)
    except ValueError:
        return text


def check_lr_patience(patience, schedule):
    """Raises ValueError for a plateau patience on a cosine schedule
    (which would ignore it)."""
    if patience is not None and schedule == "cosine":
        raise ValueError(
            "--lr-patience sets when the plateau schedule halves the "
            "learning rate, but this run trains on a cosine schedule "
            "(--schedule cosine, or the one a killed or unfinished run "
            "was planned on), which would ignore it: leave --lr-patience "
            f"out. Received: --lr-patience={patience}"
        )


def _cosine(first_epoch, final_epoch):
    return {
        "schedule": "cosine",
        "first_epoch": first_epoch,
        "schedule_final_epoch": final_epoch,
        "peak_learning_rate": None,
    }


def _schedule_keys(planned):
    """The schedule's part of a `PLANNED_EPOCHS` record."""
    keys = ("schedule", "first_epoch", "schedule_final_epoch")
    keys += ("peak_learning_rate",)
    return {key: planned[key] for key in keys if key in planned}
