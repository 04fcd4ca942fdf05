"""Renderings of a RunResult for people and machines."""
