"""pixel-models: autoregressive image models for Keras 3."""

from pixel_models import layers, losses, models

__version__ = "0.1.0"
__all__ = ["layers", "losses", "models", "__version__"]
