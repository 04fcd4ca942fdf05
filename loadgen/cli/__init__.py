"""The ``loadgen`` command: one module per command (``run``, ``report``, ``compare``,
``validate``, ``serve``, ``doctor``, ``study``), the exit codes and consoles they share
(``common``), and the Typer app that puts them together (``app``). Nothing imports the CLI
back: it is the top layer.
"""
