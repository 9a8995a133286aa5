"""medtl_helpers: the machinery behind the medtl course notebooks."""

__version__ = "0.1.0"
