"""What runs inside one process: the connection pool (``pool``), the receive mechanics
shared by both clients (``receive``), the request/response client (``requests``), the
stream client (``streams``) and the recorder they feed (``recorder``).

These drive an engine backend and a protocol codec; they know nothing of processes, hosts
or reports. Import the submodule you need.
"""
