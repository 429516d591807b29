"""Runnable examples: `python -m kern.examples.<name>`."""
