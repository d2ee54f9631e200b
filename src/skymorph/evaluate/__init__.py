"""Evaluation: metrics on physical maps (pixel and physics), benchmark runner, plots, report."""
