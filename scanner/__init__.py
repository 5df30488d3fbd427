"""scanner: similarity scanner for copyright and likeness risk in AI-generated media."""

__version__ = "0.1.0"

__all__ = ["__version__"]
