"""What a run is asked to do: the scenario schema and its YAML errors (``scenario``), units
(``units``), thresholds (``thresholds``), arrival and connection schedules (``schedule``) and
the load plan compiled from a scenario that every consumer reads (``plan``).

Nothing here opens a socket. Import the submodule you need.
"""
