"""Built-in targets: servers that run on the engine so a benchmark needs nothing installed."""
