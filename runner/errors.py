from __future__ import annotations

from outbound import errors as outbound_errors


class RunnerError(Exception):
    """Base of runner errors; the message becomes the result's error text."""

    retriable = False


class InputError(RunnerError, ValueError):
    """An input the model cannot take (wrong dtype/shape, bad .npy)."""


class FetchError(RunnerError, OSError):
    """A Binary input could not be fetched."""


class UrlRefused(FetchError, outbound_errors.UrlRefused):
    """The URL guard refused an address before any connection was made."""


class ModelLoadError(RunnerError, RuntimeError):
    """The model file could not be fetched, verified or loaded."""


class ModelRunError(RunnerError, RuntimeError):
    """ONNX Runtime failed while running the model."""
