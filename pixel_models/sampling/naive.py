"""The reference sampler: one full forward pass per sub-pixel."""

import keras
import numpy as np

from pixel_models.inputs import mixture_levels, model_inputs
from pixel_models.logistic_mixture import channel_log_probs
from pixel_models.sampling.draw import draw
from pixel_models.sampling.precision import float32_model


def sample_naive(
    model,
    noise,
    labels,
    temperature,
    top_p,
    progress,
    given=None,
    condition=None,
):
    """One full forward pass per sub-pixel. Returns (samples, logits)."""
    mixture = mixture_levels(model)
    model = float32_model(model)
    n, height, width, channels = noise.shape
    levels = mixture or model.output_shape[-1]
    x = np.zeros(noise.shape, "float32")
    logits = np.zeros((*noise.shape, levels), "float32")
    bar = keras.utils.Progbar(height * width, verbose=int(progress))
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                inputs = model_inputs(x, labels, condition)
                out = np.asarray(model.predict_on_batch(inputs))[:, i, j]
                if mixture:  # the pixel's parameters: channel c's levels
                    out = channel_log_probs(out, x[:, i, j], c, levels)
                    out = keras.ops.convert_to_numpy(out)
                else:
                    out = out[:, c]
                logits[:, i, j, c] = out
                values = np.asarray(
                    draw(out, noise[:, i, j, c], temperature, top_p)
                )
                if given is not None:
                    images, mask = given
                    values = np.where(mask[:, i, j], images[:, i, j, c], values)
                x[:, i, j, c] = values
            bar.add(1)
    return x, logits
