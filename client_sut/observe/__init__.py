"""Watching a run from outside the measured path: the servers' Prometheus metrics, the GPUs, the
host (`system`), and the progress a person sees while it runs.

Everything here runs beside the client, never in it: the scraper is a process of its own, the
live view renders in a process of its own, and the run's own event loop only reads counters.
"""
