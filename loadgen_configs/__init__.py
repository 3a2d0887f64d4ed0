"""LoadGen configurations, installed inside the package as `client_sut.loadgen_configs`.

`<system>/<Scenario>/user.conf` for each system profile (cpu-demo, a30, h100, h200), laid out as
an MLPerf submission's measurements folder expects one per system and scenario, and TEST06's
`audit.config`. The folder sits at the top of the repository where users look for it;
setup.py maps it into the package so a pip-installed client finds the same files.
"""
