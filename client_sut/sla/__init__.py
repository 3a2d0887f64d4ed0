"""`client-sut sla`: the highest load a deployment serves inside its p99 latency limits.

verdict (one probe judged), search (which rate to probe next), probe and command (the runs
themselves, each a `client-sut run` process of its own). The statistics they rest on are pure
analysis: `analysis.early_stopping` (LoadGen's early-stopping arithmetic) and `analysis.breach`
(a run's limits proven lost while it runs, which `run --stop-when-sla-fails` uses).
"""
