"""The package list lives here because pyproject.toml cannot say it: the top-level
`loadgen_configs/` folder is installed inside the package as `client_sut.loadgen_configs`
(a pip-installed client finds its user.conf files there), and setuptools' `packages.find`
does not list a package whose folder is mapped elsewhere. Everything else is in pyproject.toml.
"""

from setuptools import find_namespace_packages, find_packages, setup

CONFIGS = "client_sut.loadgen_configs"
# Its data folders (TEST06/, a30/Server/...) are listed too, so setuptools ships their files
# without warning that they look like packages it was not told about.
config_folders = [f"{CONFIGS}.{name}" for name in find_namespace_packages(where="loadgen_configs")]

setup(
    packages=find_packages(include=["client_sut", "client_sut.*"]) + [CONFIGS, *config_folders],
    package_dir={CONFIGS: "loadgen_configs"},
)
