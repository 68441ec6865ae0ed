"""The samplers' compiled functions, one way per backend."""

import keras


def compile_for_backend(function, model, jit_compile=True):
    """`function` of tensors compiled for the backend.

    On JAX the model's weights are arguments (through a
    `StatelessScope`), so a sampler made before more training samples
    from the new weights. On TensorFlow, XLA fuses the loop body: 2.3x
    the images/s of the plain tf.function on two CPU cores (PixelCNN,
    28x28, batch 16). The row's Python loops run over layers and colours,
    known when tracing, and the loop over pixels is a scan: there is
    nothing for AutoGraph to convert, and converting costs most of the
    first call (as Keras's own train step, which it keeps out of
    AutoGraph too). `jit_compile=False` keeps XLA out on TensorFlow
    (where compiling costs more than it saves). PyTorch runs it eagerly,
    op by op.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        variables = model.weights

        def stateless(values, *args):
            mapping = list(zip(variables, values, strict=True))
            with keras.StatelessScope(state_mapping=mapping):
                return function(*args)

        jitted = jax.jit(stateless)
        return lambda *args: jitted([v.value for v in variables], *args)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=jit_compile, autograph=False)
    return function
