"""metaexp: a declarative meta-optimiser for autoresearch-style experiment loops."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
