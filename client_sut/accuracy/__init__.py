"""Accuracy as MLPerf scores it (ROUGE) and the TEST06 audit.
"""
