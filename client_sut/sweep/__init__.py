"""`client-sut sweep`: the throughput-interactivity curve and its Pareto front."""
