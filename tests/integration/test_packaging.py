"""A pip-installed client (not an editable checkout) finds the shipped LoadGen configurations:
loadgen_configs/ sits at the top of the repository and is mapped into the package."""

import subprocess
import sys
import zipfile

from tests.conftest import REPO


def test_wheel_ships_every_user_conf_and_the_audit_config(tmp_path):
    # The venv's setuptools builds it (no download); the wheel is what `pip install .` installs.
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                             "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "is absent from the `packages` configuration" not in result.stdout + result.stderr
    (wheel,) = tmp_path.glob("client_sut-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"client_sut/loadgen_configs/{p.relative_to(REPO / 'loadgen_configs')}"
               for p in (REPO / "loadgen_configs").rglob("*")
               if p.is_file() and p.suffix in (".conf", ".config")}
    assert shipped and shipped <= names
    assert "client_sut/loadgen_configs/TEST06/audit.config" in names
    assert "client_sut/loadgen_configs/h200/Server/user.conf" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: Apache-2.0" in zipfile.ZipFile(wheel).read(metadata).decode()
