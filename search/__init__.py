"""mtlsearch: search how a multi-domain CNN should share its parameters under a budget."""

from __future__ import annotations

__version__ = "0.1.0"
