"""docker-compose.yml cannot run here (no Docker engine): check it statically and run its command natively."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from oransim.cli import app

ROOT = Path(__file__).resolve().parent.parent


def _services():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_compose_parses_and_builds_from_the_dockerfile():
    services = _services()
    assert services, "no services"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "python:3.11-slim-bookworm" in dockerfile and "g++" in dockerfile
    assert 'ENTRYPOINT ["oransim"]' in dockerfile
    for svc in services.values():
        assert svc["build"] == "."
        # every path the image copies exists
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src


def test_compose_commands_are_cli_commands_on_existing_scenarios():
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    for svc in _services().values():
        cmd = svc["command"]
        assert cmd[0] in names, cmd
        scenario = ROOT / cmd[1]
        assert scenario.is_file(), scenario


def test_hifi_service_delegates_the_phy_to_ns3():
    hifi = _services()["hifi"]
    cmd = hifi["command"]
    assert cmd[cmd.index("--phy") + 1] == "ns3-shm"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "'.[ns3]'" in dockerfile and "server_binary()" in dockerfile  # wheel + server compiled in the image
    assert "ipc" not in hifi or hifi["ipc"] in ("shareable", "host")  # one container: /dev/shm is its own


def _native_cases():
    for name, svc in _services().items():
        marks = [pytest.mark.ns3] if "ns3-shm" in svc["command"] else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_native_cases()))
def test_compose_command_runs_natively(tmp_path, name):
    """The service's own command, with the image's ENTRYPOINT, on this machine (shorter run)."""
    for svc in [_services()[name]]:
        cmd = list(svc["command"])
        if "--duration" in cmd:
            i = cmd.index("--duration")
            del cmd[i:i + 2]
        scenario = str(ROOT / cmd[1])
        args = [sys.executable, "-m", "oransim", cmd[0], scenario, *cmd[2:], "--duration", "0.2",
                "--out", str(tmp_path / "run")]
        res = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        assert (tmp_path / "run" / "manifest.json").is_file()
        assert (tmp_path / "run" / "report.png").stat().st_size > 1000
