import time

import keras
import numpy as np
import pytest

from pixel_models.callbacks import TimeBudget
from pixel_models.models import build_pixelcnn
from pixel_models.training import compile_model


def test_time_budget_stops_training_after_the_first_batch():
    model = compile_model(build_pixelcnn((4, 4, 1), 2, num_layers=1, filters=2))
    x = np.zeros((64, 4, 4, 1), "float32")
    budget = TimeBudget(1e-9)
    history = model.fit(
        x, x, batch_size=8, epochs=5, verbose=0, callbacks=[budget]
    )
    assert budget.stopped_early
    assert len(history.history["loss"]) == 1


def test_generous_budget_lets_training_finish():
    model = compile_model(build_pixelcnn((4, 4, 1), 2, num_layers=1, filters=2))
    x = np.zeros((16, 4, 4, 1), "float32")
    budget = TimeBudget(60)
    history = model.fit(
        x, x, batch_size=8, epochs=3, verbose=0, callbacks=[budget]
    )
    assert not budget.stopped_early
    assert len(history.history["loss"]) == 3


def test_validation_does_not_count_against_the_budget():
    class SlowValidation(keras.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            time.sleep(0.6)

    model = compile_model(build_pixelcnn((4, 4, 1), 2, num_layers=1, filters=2))
    x = np.zeros((16, 4, 4, 1), "float32")
    # Trace the train and test steps first: compiling is not the point.
    model.fit(x, x, batch_size=8, verbose=0, validation_data=(x, x))
    budget = TimeBudget(1.5 / 60)  # 1.5 s of training
    start = time.perf_counter()
    history = model.fit(
        x,
        x,
        batch_size=8,
        epochs=3,
        verbose=0,
        validation_data=(x, x),
        callbacks=[budget, SlowValidation()],
    )
    # Three epochs of validation take 3.6 s, far over the budget, yet
    # training ran on: only the (fast) training steps count.
    assert time.perf_counter() - start > 3.6
    assert not budget.stopped_early
    assert len(history.history["loss"]) == 3
    assert budget.elapsed_minutes() < 1.5 / 60


def test_bad_budget_is_refused():
    with pytest.raises(ValueError, match="minutes=0"):
        TimeBudget(0)
