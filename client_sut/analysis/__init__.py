"""Pure analysis of what was measured: metrics and goodput over records, LoadGen's logs, replica
balance and the statistical tests behind it, LoadGen's early-stopping arithmetic and the watch
that proves a run's p99 limits lost while it runs. No I/O beyond reading a log.
"""
