"""Helpers at the reference API's `workflow.utils` paths."""
