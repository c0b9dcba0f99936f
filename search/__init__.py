"""mtlsearch: search how a multi-domain CNN should share its parameters under a budget."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_trained", "predict"]


def __getattr__(name: str) -> object:
    # Reloading a trained model needs torch; `mtlsearch --help` must not import it.
    if name in ("load_trained", "predict"):
        from mtlsearch import _trained

        return getattr(_trained, name)
    raise AttributeError(name)
