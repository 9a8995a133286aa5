"""The package's version, here where every layer can read it without importing the package's face
(`medtl_helpers/__init__.py` re-exports it); pyproject.toml holds the same number."""

__version__ = "0.1.0"
