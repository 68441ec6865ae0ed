"""Argument checks shared by every module, with errors that name the
argument, say what was expected and echo what was received."""

import numbers


def check_int(name, value, minimum=1, allow_none=False):
    """Raises ValueError unless `value` is an integer >= `minimum`.

    Args:
        name: the argument's name, as the user wrote it.
        value: the value received.
        minimum: smallest allowed value.
        allow_none: also accept None.

    Example:
    >>> check_int("filters", 0)
    Traceback (most recent call last):
    ...
    ValueError: filters must be an integer >= 1. Received: filters=0
    """
    if allow_none and value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        expected = f"an integer >= {minimum}"
        if allow_none:
            expected = f"None or {expected}"
        raise ValueError(
            f"{name} must be {expected}. Received: {name}={value!r}"
        )
