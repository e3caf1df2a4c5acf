"""The wire package's one error (light to import: `cli.py` catches it)."""


class CaptureError(RuntimeError):
    """The capture cannot be taken; the message says why and what to do."""
