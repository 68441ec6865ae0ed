import keras
import numpy as np
import pytest

from pixel_models import callbacks
from pixel_models.callbacks import TimeBudget
from pixel_models.models import build_pixelcnn
from pixel_models.training import compile_model


class FakeClock:
    """A clock that moves only when a test says so."""

    def __init__(self):
        self.now = 1000.0

    def perf_counter(self):
        return self.now


def fit_with_clock(monkeypatch, train_seconds, test_seconds):
    """Three epochs under a 60 s budget; each train or test batch costs
    the given seconds on a fake clock."""
    clock = FakeClock()
    monkeypatch.setattr(callbacks, "time", clock)

    class Spend(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.now += train_seconds

        def on_test_batch_end(self, batch, logs=None):
            clock.now += test_seconds

    model = compile_model(build_pixelcnn((4, 4, 1), 2, num_layers=1, filters=2))
    x = np.zeros((16, 4, 4, 1), "float32")
    budget = TimeBudget(1.0)
    # Spend runs before the budget's check at each batch end.
    history = model.fit(
        x,
        x,
        batch_size=8,
        epochs=3,
        verbose=0,
        validation_data=(x, x),
        callbacks=[Spend(), budget],
    )
    return budget, history


def test_validation_does_not_count_against_the_budget(monkeypatch):
    # Each validation batch takes 100 s, each training batch 1 s: six
    # training batches spend 6 of the 60 s, and validation none of them.
    budget, history = fit_with_clock(monkeypatch, 1.0, 100.0)
    assert not budget.stopped_early
    assert len(history.history["loss"]) == 3
    assert budget.elapsed_minutes() == pytest.approx(6.0 / 60)


def test_training_time_counts_against_the_budget(monkeypatch):
    # 25 s per training batch: the budget is spent at the third batch,
    # in the second epoch, and validation's time does not delay that.
    budget, history = fit_with_clock(monkeypatch, 25.0, 0.0)
    assert budget.stopped_early
    assert len(history.history["loss"]) == 2
    assert budget.elapsed_minutes() == pytest.approx(75.0 / 60)


def test_a_spent_budget_stops_training_at_the_first_batch(monkeypatch):
    budget, history = fit_with_clock(monkeypatch, 61.0, 0.0)
    assert budget.stopped_early
    assert len(history.history["loss"]) == 1


def test_bad_budget_is_refused():
    with pytest.raises(ValueError, match="minutes=0"):
        TimeBudget(0)
