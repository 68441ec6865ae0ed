"""Keras callbacks for training runs that Keras itself does not provide."""

import time

import keras


class TimeBudget(keras.callbacks.Callback):
    """Stops training once a wall-clock budget is spent.

    Checked after every batch, so a run overshoots by at most one step;
    the epoch in progress ends there (its validation still runs), so
    checkpoints and logs stay consistent. Use it to compare model
    families at an equal compute budget.

    Args:
        minutes: the budget, in minutes of training time.

    Example:
    >>> model.fit(ds, epochs=1000, callbacks=[TimeBudget(10)])  # doctest: +SKIP
    """

    def __init__(self, minutes):
        super().__init__()
        if not minutes > 0:
            raise ValueError(
                f"minutes must be positive. Received: minutes={minutes!r}"
            )
        self.minutes = minutes
        self.start = None
        self.stopped_early = False

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def elapsed_minutes(self):
        return (time.perf_counter() - self.start) / 60.0

    def on_train_batch_end(self, batch, logs=None):
        if self.elapsed_minutes() >= self.minutes:
            self.stopped_early = True
            self.model.stop_training = True
