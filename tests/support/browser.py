"""Helpers of the browser tests (fixtures are in tests/browser/conftest.py)."""

from __future__ import annotations

import io
from pathlib import Path


def shot(locator, path: Path) -> None:
    """A screenshot as a 256-colour PNG: UI pixels quantize without visible loss."""
    from PIL import Image

    image = Image.open(io.BytesIO(locator.screenshot()))
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
