"""loadgen: a network load generator on a completion-port engine.

The package is usable as a library without its CLI: build a ``Scenario``, call
``loadgen.run.api.run``, get a ``RunResult``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
