"""flora's JavaScript SDK, shipped as package data (importable as ``flora_sdk``)."""

from importlib import resources


def read(name: str) -> str:
    """Return the text of an SDK file, e.g. ``read("prelude.js")``."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
