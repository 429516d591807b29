"""Kept as an import path: the injection of run values into user code lives in `kern.run.injected`."""

from kern.run.injected import INJECTABLE, call_with, declared

__all__ = ["INJECTABLE", "call_with", "declared"]
