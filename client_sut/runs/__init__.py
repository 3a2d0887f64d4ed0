"""One LoadGen run end to end (runner), its settings and results, the printed summary, and
calibration.
"""
