"""The distribution: what `python -m build` makes and what a fresh venv gets from it."""
