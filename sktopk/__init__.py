"""sktopk: top-k losses for PyTorch and scikit-learn."""

__version__ = "0.1.0"

__all__ = ["__version__"]
