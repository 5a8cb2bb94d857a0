"""docker-compose.yml and the Dockerfile, checked without a Docker engine (CI machines have none).

The image must install what the project needs with the Makefile's pins, and every service's command
must work as the container runs it: the same entry point and arguments (shorter duration), in a
folder laid out like the container's working directory, with its volumes in place, and its run
folder must land on a volume (a folder written inside the container alone would be lost).
``scripts/compose_check.sh`` runs `docker-compose up` for real where a Docker engine exists.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml

from oransim.cli import app

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------- parsing
def _services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _workdir() -> PurePosixPath:
    return PurePosixPath([a for i, a in _dockerfile() if i == "WORKDIR"][-1])


def _copies() -> list[tuple[list[str], str, int]]:
    """(sources, destination as written, instruction index) of every COPY."""
    out = []
    for n, (ins, args) in enumerate(_dockerfile()):
        if ins == "COPY":
            *src, dest = args.split()
            out.append((src, dest, n))
    return out


def _image_paths() -> dict[PurePosixPath, str]:
    """Path relative to WORKDIR -> the repository path COPY put there."""
    out = {}
    for sources, dest, _ in _copies():
        into = PurePosixPath(_workdir() / dest).relative_to(_workdir())
        for src in sources:
            several = len(sources) > 1 or dest.endswith("/")
            out[into / PurePosixPath(src).name if several else into] = src
    return out


def _pip_installs(lines: list[str]) -> list[list[str]]:
    """The argument lists of every `pip install` in shell lines."""
    out = []
    for line in lines:
        words = shlex.split(line.replace(";", " ; "), posix=True)
        for i in range(len(words) - 1):
            if words[i].endswith("pip") and words[i + 1] == "install":
                args = []
                for w in words[i + 2:]:
                    if w in ("&&", ";", "||", "|"):
                        break
                    args.append(w)
                out.append(args)
    return out


def _pins(args: list[str]) -> dict[str, str]:
    return {m[1].lower(): m[2] for a in args if (m := re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", a))}


def _extras(args: list[str]) -> list[str]:
    return [e for a in args if (m := re.fullmatch(r"\.\[([\w,-]+)\]", a)) for e in m[1].split(",")]


def _req_name(req: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", req)[0].lower()


def _dockerignored(path: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip()]
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatch(p, pat.removeprefix("**/")) or fnmatch.fnmatch(p, pat)
               for pat in patterns for p in prefixes)


# ------------------------------------------------------------------------------ the Dockerfile
def test_base_image_is_a_build_argument_with_a_python_the_project_accepts():
    steps = _dockerfile()
    args = dict(a.split("=", 1) for i, a in steps if i == "ARG" and "=" in a)
    frm = [a for i, a in steps if i == "FROM"]
    assert frm == ["${BASE_IMAGE}"], frm
    m = re.fullmatch(r"python:(\d+)\.(\d+)-slim-bookworm", args["BASE_IMAGE"])
    assert m, args["BASE_IMAGE"]
    need = re.fullmatch(r">=(\d+)\.(\d+)", _pyproject()["project"]["requires-python"])
    assert (int(m[1]), int(m[2])) >= (int(need[1]), int(need[2]))
    entry = json.loads([a for i, a in steps if i == "ENTRYPOINT"][-1])
    assert entry == ["oransim"] and "oransim" in _pyproject()["project"]["scripts"]


def test_image_copies_every_package_before_installing_the_project():
    steps = _dockerfile()
    install_at = next(n for n, (i, a) in enumerate(steps) if i == "RUN" and _extras(sum(_pip_installs([a]), [])))
    copied = {}
    for sources, dest, n in _copies():
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
            assert not _dockerignored(src), f"COPY {src}: excluded by .dockerignore"
            copied[src.rstrip("/")] = n
    project = _pyproject()
    packages = [d.name for d in ROOT.iterdir() if (d / "__init__.py").is_file()
                and any(fnmatch.fnmatch(d.name, pat) for pat in project["tool"]["setuptools"]["packages"]["find"]["include"])]
    assert packages, "no packages found"
    for name in [*packages, project["project"]["readme"], "pyproject.toml"]:
        assert copied.get(name, install_at) < install_at, f"{name} is not in the image before `pip install -e`"
    for pkg, globs in project["tool"]["setuptools"].get("package-data", {}).items():
        for g in globs:
            assert list((ROOT / pkg).glob(g)), f"package data {pkg}/{g} matches nothing"
    assert _dockerignored(".venv") and _dockerignored("runs")  # keep the build context small


def test_image_pins_match_the_makefile():
    make_lines = [ln.strip() for ln in (ROOT / "Makefile").read_text().splitlines() if "pip install" in ln]
    make = [w for args in _pip_installs(make_lines) for w in args]
    runs = [a for i, a in _dockerfile() if i == "RUN"]
    docker = _pip_installs(runs)
    project = _pyproject()["project"]
    extras = _extras(sum(docker, []))
    assert extras and set(extras) <= set(project["optional-dependencies"]), extras
    assert set(_extras(make)) <= set(project["optional-dependencies"])
    # what the image installs: the project's dependencies and the extras it asks for
    image_reqs = [*project["dependencies"], *[r for e in extras for r in project["optional-dependencies"][e]]]
    image_names = {_req_name(r) for r in image_reqs}
    docker_pins = _pins(sum(docker, []))
    for name, version in _pins(make).items():
        if name in image_names:  # e.g. torch, once a runtime dependency: the same build as the Makefile's
            assert docker_pins.get(name) == version, f"the Makefile pins {name}=={version}, the image does not"
    # the server is linked against libns3.<version>-*.so of the pinned wheel
    from ns3_bridge.build import NS3_VERSION

    ns3_pin = [r for r in image_reqs if _req_name(r) == "ns3"]
    assert ns3_pin and ns3_pin[0].startswith(f"ns3=={NS3_VERSION}."), ns3_pin
    # every `python -c "from X import Y"` the build runs names something that exists
    for run in runs:
        for mod, names in re.findall(r"from ([\w.]+) import ([\w, ]+)", run):
            module = importlib.import_module(mod)
            for n in names.split(","):
                assert hasattr(module, n.strip()), (mod, n)
    assert any("g++" in r for r in runs)  # the ns-3 wheel's cppyy and the PHY server are compiled


# ------------------------------------------------------------------------------------ compose
def _mounts(svc) -> list[tuple[Path, PurePosixPath, bool]]:
    """(host path, path relative to WORKDIR, read-only) of every volume of a service."""
    out = []
    for v in svc.get("volumes", []):
        host, container, *mode = v.split(":")
        rel = PurePosixPath(container).relative_to(_workdir())  # raises if outside WORKDIR
        out.append((ROOT / host, rel, mode == ["ro"]))
    return out


def _shm_bytes(text: str | None) -> int:
    if text is None:
        return 64 << 20  # Docker's default /dev/shm
    m = re.fullmatch(r"(\d+)([kmg]?)b?", str(text).lower())
    return int(m[1]) << {"": 0, "k": 10, "m": 20, "g": 30}[m[2]]


def test_services_build_the_image_and_mount_what_their_commands_use():
    from ns3_bridge.shm import segment_layout
    from simcore.scenario import load_scenario

    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    images = set()
    for name, svc in _services().items():
        assert svc["build"] in (".", {"context": "."}), name
        images.add(svc.get("image"))
        cmd = svc["command"]
        if cmd[:2] == ["xapp", "serve"]:  # an xApp: no scenario, no run folder (tests/test_xapp.py runs the pair)
            assert "xapp" in {g.name for g in app.registered_groups}
            continue
        assert cmd[0] in commands, (name, cmd)
        mounts = _mounts(svc)
        for host, rel, ro in mounts:
            if ro:  # read-only mounts must exist on the host; writable ones docker creates
                assert host.exists(), (name, host)
        # the scenario as the container sees it: through a volume, else from the image
        scn = PurePosixPath(cmd[1])
        via = [host / scn.relative_to(rel) for host, rel, _ in mounts if scn.is_relative_to(rel)]
        via += [ROOT / src / scn.relative_to(at) for at, src in _image_paths().items() if scn.is_relative_to(at)]
        assert via and all(p.is_file() for p in via), (name, scn, via)
        assert any(not ro for _, _, ro in mounts), f"{name}: no writable volume for the run folder"
        if cmd[0] == "run" and "--out" not in cmd:  # the same folder every `up`: it must be replaceable
            assert "--overwrite" in cmd, name
        if "ns3-shm" in cmd:
            s = load_scenario(via[0])
            need = segment_layout(s.n_ues, s.n_ru, s.cell.prbs_per_ru)["total"]
            assert need < _shm_bytes(svc.get("shm_size")) // 2, (name, need)
            assert "ipc" not in svc or svc["ipc"] in ("shareable", "host")  # one container: its own /dev/shm
    assert len(images) == 1, images  # one image built once for every service


def _native_cases():
    for name, svc in _services().items():
        if svc["command"][0] == "xapp" or "network_mode" in svc:
            continue  # the xApp and the simulator it serves run together in tests/test_xapp.py
        marks = [pytest.mark.ns3] if "ns3-shm" in svc["command"] else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_native_cases()))
def test_compose_command_runs_natively(tmp_path, name):
    """The service's command through the image's entry point, in a stand-in for its container: a
    working directory whose volumes are links (read-only ones to the repository, writable ones to
    fresh folders standing for the host's)."""
    svc = _services()[name]
    work, host_side = tmp_path / "container", tmp_path / "host"
    work.mkdir()
    writable = []
    for host, rel, ro in _mounts(svc):
        target = host if ro else host_side / rel
        target.mkdir(parents=True, exist_ok=True)
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).symlink_to(target, target_is_directory=True)
        writable += [] if ro else [target]
    layout = sorted(p.name for p in work.iterdir())
    cmd = list(svc["command"])
    if "--duration" in cmd:
        cmd[cmd.index("--duration") + 1] = "0.2"
    else:
        cmd += ["--duration", "0.2"]
    entry = Path(sys.executable).with_name("oransim")
    exe = [str(entry)] if entry.exists() else [sys.executable, "-m", "oransim"]
    res = subprocess.run([*exe, *cmd], cwd=work, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in work.iterdir()) == layout, "the run wrote outside the volumes"
    manifests = [m for w in writable for m in w.rglob("manifest.json")]
    assert len(manifests) == 1, manifests
    folder = manifests[0].parent
    if "--report" in cmd:
        assert (folder / "report.png").stat().st_size > 1000
    m = json.loads(manifests[0].read_text())
    assert m["phy"]["backend"] == (cmd[cmd.index("--phy") + 1] if "--phy" in cmd else "builtin")
