"""A run's outcome as pure data (``model``: RunResult, versioned JSON) and how result
files are written (``files``). Nothing here talks to a socket or draws anything."""
