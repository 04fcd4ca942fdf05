"""Measurement: HDR latency histograms (``histogram``), interval recorder, memory samplers.

Nothing is imported here on purpose: import the submodule you need, e.g.
``from loadgen.stats.histogram import HdrHistogram``.
"""
