"""Sans-IO protocol codecs: bytes in, verdicts out. No sockets, no clocks, no engine."""
