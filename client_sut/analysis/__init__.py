"""Pure analysis of what was measured: metrics over records, LoadGen's logs, replica balance and
the statistical tests behind it. No I/O beyond reading a log.
"""
