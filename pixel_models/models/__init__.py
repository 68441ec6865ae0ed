"""Model builders: plain functions returning functional `keras.Model`s."""

from pixel_models.models.pixelcnn import build_pixelcnn

__all__ = ["build_pixelcnn"]
