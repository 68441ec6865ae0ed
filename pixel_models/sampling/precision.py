"""Sampling in float32 from a model built under a mixed precision policy.

A model built under `mixed_bfloat16` or `mixed_float16` keeps float32
variables but computes in 16 bits, where a full pass and a one-pixel step
round differently (their sums run in other orders): the two samplers
would draw different images. Both sample from a float32 copy instead.
"""

import weakref

import keras

_FLOAT32_COPIES = weakref.WeakKeyDictionary()


def _computes_in_float32(model):
    return all(
        layer.compute_dtype == "float32" for layer in (model, *model.layers)
    )


def float32_model(model):
    """`model` computing in float32: itself, or a float32 copy of it.

    The copy is made once per model and takes the model's current
    weights at every call, so a model trained further between two calls
    samples with its new weights.
    """
    if _computes_in_float32(model):
        return model
    copy = _FLOAT32_COPIES.get(model)
    if copy is None:
        policy = keras.config.dtype_policy()
        # Layers that make their sublayers take the global policy.
        keras.config.set_dtype_policy("float32")
        try:
            copy = keras.models.clone_model(
                model,
                clone_function=lambda layer: layer.__class__.from_config(
                    {**layer.get_config(), "dtype": "float32"}
                ),
            )
        finally:
            keras.config.set_dtype_policy(policy)
        _FLOAT32_COPIES[model] = copy
    copy.set_weights(model.get_weights())
    return copy
