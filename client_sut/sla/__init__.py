"""`client-sut sla`: the highest load a deployment serves inside its p99 latency limits.

stats (LoadGen's early-stopping arithmetic), breach (a run's limits proven broken while it
runs), verdict (one probe judged), search (which rate to probe next), probe and command (the
runs themselves, each a `client-sut run` process of its own).
"""
