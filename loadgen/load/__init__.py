"""What runs inside one process: the connection pool and its loop (``pool``, with the token
layout in ``tokens``), the receive mechanics shared by both clients (``receive``), the
request/response client (``requests``, with the open model's dispatch in ``arrivals`` and
the closed model's think time and idle phases in ``pacing``), the stream client
(``streams``), what both are configured with (``client_config``) and the recorder they feed
(``recorder``).

These drive an engine backend and a protocol codec; they know nothing of processes, hosts
or reports. Import the submodule you need.
"""
