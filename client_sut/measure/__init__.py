"""The measuring side: the lean HTTP transport, SSE and stream parsing (one request -> one
record), the endpoint pool, the LoadGen bridge, warm-up, endpoint discovery and probing,
timeouts and the client's self-checks.
"""
