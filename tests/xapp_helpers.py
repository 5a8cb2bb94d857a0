"""Helpers shared by the xApp tests: a real observation, xApp servers in a thread or a process."""

from __future__ import annotations

import contextlib
import importlib.util
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from core_helpers import run_engine, small
from oransim.xapp import XappServer
from simcore.plugins import make_policy

ROOT = Path(__file__).resolve().parent.parent


def two_ru_scenario(**top):
    """3 UEs per slice per RU, 2 RUs (interference, R > 1), decisions every 10 TTIs."""
    rus = [{"x_m": 0.0, "y_m": 0.0}, {"x_m": 500.0, "y_m": 0.0}]
    cell = {"rus": rus, "prbs_per_ru": 12}
    return small(ues=2, duration_s=0.05, cell=cell, **top)


def observation(scn=None, tti=None):
    """The observation of a short pf run at its last decision TTI (buffers, averages of a running cell)."""
    scn = scn or two_ru_scenario()
    eng, _ = run_engine(scn, make_policy("pf"))
    return eng.observation(eng.n_tti - 1 if tti is None else tti)


@contextlib.contextmanager
def thread_server(make_handler, bind: str = "tcp://127.0.0.1:*"):
    """An ``XappServer`` answering in a thread of this process; yields it (``.endpoint``)."""
    lines: list[str] = []
    srv = XappServer(bind, make_handler, say=lines.append)
    srv.lines = lines
    stop = threading.Event()
    th = threading.Thread(target=srv.serve, args=(stop, 20), daemon=True)
    th.start()
    try:
        yield srv
    finally:
        stop.set()
        th.join(10)


SERVING = re.compile(r"serving policy '.*' on (\S+) ")


class ServerProcess:
    """``python -m oransim xapp serve ...`` in a child process; ``endpoint`` once it is serving."""

    def __init__(self, args: list[str], log: Path, bind: str = "tcp://127.0.0.1:*"):
        self.log = log
        self.fh = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "oransim", "xapp", "serve", *args, "--bind", bind],
                                     stdout=subprocess.DEVNULL, stderr=self.fh, cwd=ROOT)
        deadline = time.monotonic() + 120  # a loaded machine may take a while to import numpy & co.
        while True:
            m = SERVING.search(log.read_text())
            if m:
                self.endpoint = m.group(1)
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"xapp serve did not start: {log.read_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)
        self.fh.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.fh.close()


def load_example(name: str):
    """A module from examples/ (import only: their servers start under ``__main__``)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
