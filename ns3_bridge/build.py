"""Compile the ns-3 PHY server against the ``ns3`` wheel, once per content hash.

The wheel ships ns-3.44's shared libraries, its headers and Boost's (Interprocess included), but its
pkg-config and CMake files carry the builder's paths, so the flags are given here: headers from
``<site>/ns3/include``, libraries from ``<site>/ns3/lib64`` (with an rpath, so the binary runs without
LD_LIBRARY_PATH), every module listed, and ``--allow-shlib-undefined`` because config-store refers
to GTK symbols the wheel does not ship.

The binary is cached under ``$ORANSIM_CACHE`` (default ``~/.cache/oransim``) in a folder named by
the hash of the source, the flags, the compiler's version and the wheel's path, and is written
atomically (compiled to a temporary name, then renamed), under a file lock so that concurrent
first runs compile it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("server") / "oransim_phy_server.cc"
NS3_MODULES = ("lte", "spectrum", "propagation", "mobility", "network", "core", "antenna", "internet",
               "stats", "buildings", "config-store", "point-to-point", "virtual-net-device", "fd-net-device")
NS3_VERSION = "3.44"


class Ns3BuildError(RuntimeError):
    pass


def ns3_root() -> Path:
    spec = importlib.util.find_spec("ns3")
    if spec is None or not spec.submodule_search_locations:
        raise Ns3BuildError("the ns3 wheel is not installed (pip install -e '.[ns3]')")
    root = Path(list(spec.submodule_search_locations)[0])
    if not (root / "include" / "ns3" / "lte-module.h").exists():
        raise Ns3BuildError(f"the ns3 wheel at {root} has no LTE headers")
    return root


def compile_command(output: Path, root: Path, source: Path = SOURCE) -> list[str]:
    lib = root / "lib64"
    return ["g++", "-std=c++20", "-O2", "-w", f"-I{root / 'include'}", "-o", str(output), str(source),
            f"-L{lib}", f"-Wl,-rpath,{lib}", *[f"-lns{NS3_VERSION}-{m}" for m in NS3_MODULES],
            "-Wl,--allow-shlib-undefined", "-pthread", "-lrt"]


def cache_dir() -> Path:
    return Path(os.environ.get("ORANSIM_CACHE", Path.home() / ".cache" / "oransim"))


def server_binary(progress=None, source: Path = SOURCE) -> Path:
    """Path of the compiled server, compiling it first if this source has not been built yet
    (``source``: another version of the server, e.g. a benchmark's reference)."""
    if shutil.which("g++") is None:
        raise Ns3BuildError("g++ is needed to build the ns-3 PHY server and was not found on PATH")
    root = ns3_root()
    gxx = subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    key = hashlib.sha256()
    key.update(Path(source).read_bytes())
    key.update(" ".join(compile_command(Path("out"), root, source)).encode())
    key.update(gxx.encode())
    folder = cache_dir() / "ns3-phy-server" / key.hexdigest()[:16]
    binary = folder / "oransim_phy_server"
    if binary.exists():
        return binary
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():  # built by another process while we waited
            return binary
        if progress is not None:
            progress("compiling the ns-3 PHY server (once, ~10 s)")
        tmp = folder / f".oransim_phy_server.{os.getpid()}"
        res = subprocess.run(compile_command(tmp, root, source), capture_output=True, text=True)
        if res.returncode != 0:
            log = folder / "build.log"
            log.write_text(res.stdout + res.stderr)
            errors = [ln.strip() for ln in res.stderr.splitlines() if "error" in ln or "cannot find" in ln]
            first = next((ln for ln in errors if "collect2" not in ln), errors[0] if errors else res.stderr.strip()[:200])
            tmp.unlink(missing_ok=True)
            raise Ns3BuildError(f"compiling the ns-3 PHY server failed: {first} (full log: {log})")
        os.replace(tmp, binary)
    return binary
