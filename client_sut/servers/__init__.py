"""The project's own test servers: the loopback emitter that speaks vLLM's dialect with known
timing, capacity and faults, and its /metrics.
"""
