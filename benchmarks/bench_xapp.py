"""Round-trip time of one RIC decision through an xApp, over ipc:// and tcp://127.0.0.1.

States: observations of the paper cell (1 RU, 30 PRBs, 3 x 10 UEs, PF every 10 TTIs) sampled from a
running engine. For each transport, ``oransim xapp serve pf`` runs in its own process and the RIC's
``xapp`` policy decides every state in turn (after a warm-up); each decision is timed around
``decide`` (encode the indication, send, the xApp decodes / decides / encodes, receive, decode,
``check_allocation``). The xApp reports its own decision time (``decide_ms``), so the table also
gives the cost of the boundary alone (round trip minus the xApp's PF decision), which is what
running a policy as an xApp adds; "RIC CPU" and "xApp CPU" are the CPU time each process used per
decision (all threads, ZeroMQ's I/O thread included; the RIC's is this process, whose only work
while timing is deciding), and "boundary CPU" their sum less PF's own in-process CPU time: figures
that waiting for a busy core does not inflate. References measured in the same run: PF in-process on the same
states, the codec alone (encode + decode of the indication and the control, no socket), and a bare
ZeroMQ echo process (the encoded indication's frames sent back with the same socket calls, no
codec): the transport's floor on this machine at this time, which on a shared machine is mostly
the wait for a free core.

    python benchmarks/bench_xapp.py [--decisions 2000] [--ues 10]
    python benchmarks/bench_xapp.py --instructions 100    # instructions per decision on each side (valgrind)
    python benchmarks/bench_xapp.py --stages              # where the time goes: each step on each side

The target: a median boundary cost under 0.3 ms over ipc, well under one 1 ms TTI.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import machine_reference  # noqa: E402
from cells import paper_cell  # noqa: E402

SERVING = re.compile(r"serving policy '.*' on (\S+) ")
#: A bare ZeroMQ echo in its own process: the transport's floor (no codec, no policy) on this machine now.
ECHO = r"""
import sys, zmq
from policies.xapp import recv_frames, send_frames
s = zmq.Context().socket(zmq.ROUTER); s.bind(sys.argv[1]); print(s.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
while True:
    zmq.zmq_poll([(s, zmq.POLLIN)], -1)
    msg = recv_frames(s)
    send_frames(s, msg, ())
"""


#: The xApp side of ``--stages``: ``oransim xapp serve pf``'s steps, each timed (wall and thread CPU).
STAGED_XAPP = r"""
import sys, time, zmq
from oransim.xapp import XappServer, policy_handler
from policies.xapp import recv_frames, send_frames
from simcore.e2 import encode_control
from simcore.e2_decode import decode_indication
srv = XappServer(sys.argv[1], policy_handler("pf"), say=lambda line: None)
print(srv.endpoint, flush=True)
sock, items, clocks = srv.sock, [(srv.sock, zmq.POLLIN)], (time.perf_counter, time.thread_time)
rows, handler = [], None
for i in range(int(sys.argv[2])):
    zmq.zmq_poll(items, -1)
    t = [[c() for c in clocks]]
    msg = recv_frames(sock); t.append([c() for c in clocks])
    ind = decode_indication(msg[2:]); t.append([c() for c in clocks])
    handler = handler or srv.make_handler(ind.policy_seed)
    alloc = handler(ind); t.append([c() for c in clocks])
    out = encode_control(alloc, run_id=ind.run_id, seq=ind.seq, role=ind.role); t.append([c() for c in clocks])
    send_frames(sock, out, (msg[0], b"")); t.append([c() for c in clocks])
    rows.append(t)
print(repr(rows), flush=True)
"""
XAPP_STAGES = ("recv", "decode indication", "PF", "encode control", "send")
RIC_STAGES = ("encode indication", "send", "wait (xApp + transport)", "recv", "decode control", "check_allocation")


def sample_states(ues_per_slice: int, n: int) -> list:
    from simcore.engine import Engine
    from simcore.plugins import make_phy, make_policy

    scn = paper_cell(ues_per_slice, duration_s=0.5)
    eng = Engine(scn, make_policy("pf"), make_phy("builtin"))
    eng.run()
    return [eng.observation(eng.n_tti - 1 - 10 * i) for i in range(n)]  # past decision TTIs' CSI, today's queues


def start_xapp(bind: str, log: Path, prefix: tuple = ()):
    fh = open(log, "w")
    proc = subprocess.Popen([*prefix, sys.executable, "-m", "oransim", "xapp", "serve", "pf", "--bind", bind],
                            stdout=subprocess.DEVNULL, stderr=fh)
    t_end = time.monotonic() + (3600 if prefix else 120)  # under valgrind on a loaded machine, imports take minutes
    while not SERVING.search(log.read_text()):
        if proc.poll() is not None or time.monotonic() > t_end:
            proc.kill()
            proc.wait(30)
            raise SystemExit(f"xapp serve did not start: {log.read_text()}")
        time.sleep(0.05)
    return proc, SERVING.search(log.read_text()).group(1)


def echo_rtt_ms(bind: str, n: int, frames: list) -> np.ndarray:
    """Round trips of ``frames`` (an encoded indication) to a bare echo process: no codec, no policy."""
    import zmq

    proc = subprocess.Popen([sys.executable, "-c", ECHO, bind], stdout=subprocess.PIPE, text=True)
    try:
        from policies.xapp import recv_frames, send_frames

        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.connect(proc.stdout.readline().strip())
        out = []
        for i in range(n + 100):
            t0 = time.perf_counter()
            while not send_frames(sock, frames):  # not connected yet
                time.sleep(0.01)
            zmq.zmq_poll([(sock, zmq.POLLIN)], -1)
            recv_frames(sock)
            if i >= 100:
                out.append((time.perf_counter() - t0) * 1e3)
        sock.close(0)
    finally:
        proc.terminate()
        proc.wait(30)
    return np.array(out)


def q(x, p) -> float:
    return float(np.percentile(x, p))


def cpu_s(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far; Linux /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(endpoint: str, xapp_pid: int, states: list, n: int, warmup: int = 100) -> dict:
    from simcore.plugins import make_policy

    pol = make_policy("xapp", {"endpoint": endpoint, "timeout_ms": 1000, "connect_timeout_ms": 30000})
    pol.reset(1)
    wall = []
    for i in range(warmup + n):
        if i == warmup:
            ric0, xapp0 = time.process_time(), cpu_s(xapp_pid)
        obs = states[i % len(states)]
        t0 = time.perf_counter()
        alloc = pol.decide(obs)
        if i >= warmup:
            wall.append((time.perf_counter() - t0) * 1e3)
        assert alloc.info["record"]["xapp_status"] == "ok", alloc.info
    ric, xapp = (time.process_time() - ric0) / n * 1e3, (cpu_s(xapp_pid) - xapp0) / n * 1e3
    remote = np.array(pol.remote_ms[warmup:])
    pol.close()
    wall = np.array(wall)
    return {"rtt": wall, "boundary": wall - remote, "xapp_pf": remote, "ric_cpu": ric, "xapp_cpu": xapp}


def stage_table(rows: list, names: tuple, warmup: int) -> list:
    """[(stage, wall p50 us, CPU mean us)] from rows of [(perf_counter, thread_time)] per stage boundary."""
    t = np.array(rows[warmup:])  # (n, stages + 1, 2)
    d = np.diff(t, axis=1) * 1e6
    return [(name, float(np.median(d[:, i, 0])), float(d[:, i, 1].mean())) for i, name in enumerate(names)]


def stages(states: list, bind: str, n: int, warmup: int = 200) -> None:
    """Where the time of a decision goes on each side: the steps of ``XappPolicy.decide`` (RIC) and of
    ``oransim xapp serve pf`` (xApp), each timed in its own process (wall median, thread-CPU mean)."""
    import ast

    import zmq

    from policies.xapp import recv_frames, send_frames
    from simcore.contracts import Allocation, check_allocation
    from simcore.e2 import encode_indication
    from simcore.e2_decode import decode_reply

    proc = subprocess.Popen([sys.executable, "-c", STAGED_XAPP, bind, str(n + warmup)], stdout=subprocess.PIPE, text=True)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(proc.stdout.readline().strip())
    items, clocks, rows = [(sock, zmq.POLLIN)], (time.perf_counter, time.thread_time), []
    for i in range(n + warmup):
        obs = states[i % len(states)]
        t = [[c() for c in clocks]]
        frames = encode_indication(obs, run_id="0" * 32, seq=i + 1, deadline_ms=1000.0, policy_seed=1)
        t.append([c() for c in clocks])
        while not send_frames(sock, frames):  # not connected yet
            time.sleep(0.01)
        t.append([c() for c in clocks])
        zmq.zmq_poll(items, -1); t.append([c() for c in clocks])
        msg = recv_frames(sock)[1:]; t.append([c() for c in clocks])
        rep = decode_reply(msg, n_ues=obs.n_ues, n_rus=obs.n_rus, n_prbs=obs.n_prbs); t.append([c() for c in clocks])
        check_allocation(Allocation(rep.ue_ru, rep.prb_owner, rep.power_w, dict(rep.info)), obs)
        t.append([c() for c in clocks])
        rows.append(t)
    xapp_rows = ast.literal_eval(proc.stdout.readline())
    proc.wait(30)
    sock.close(0)
    for side, table in (("RIC", stage_table(rows, RIC_STAGES, warmup)), ("xApp", stage_table(xapp_rows, XAPP_STAGES, warmup))):
        print(f"{side} side, us per decision: " + "; ".join(f"{s} {w:.1f} (CPU {c:.1f})" for s, w, c in table))


def codec_ms(states: list, n: int = 500) -> float:
    from simcore.e2 import encode_control, encode_indication
    from simcore.e2_decode import decode_indication, decode_reply
    from simcore.plugins import make_policy

    obs = states[0]
    alloc = make_policy("pf").decide(obs)
    t0 = time.thread_time()  # CPU time: a loaded machine does not stretch it
    for i in range(n):
        ind = decode_indication(encode_indication(obs, run_id="r", seq=i))
        decode_reply(encode_control(alloc, run_id="r", seq=i), n_ues=ind.obs.n_ues, n_rus=1, n_prbs=ind.obs.n_prbs)
    return (time.thread_time() - t0) / n * 1e3


def ric_loop(endpoint: str, states: list, n: int) -> None:
    """The RIC side alone: ``n`` decisions through the xApp at ``endpoint``."""
    from simcore.plugins import make_policy

    pol = make_policy("xapp", {"endpoint": endpoint, "timeout_ms": 600000, "connect_timeout_ms": 600000})
    pol.reset(1)
    for i in range(n):
        assert pol.decide(states[i % len(states)]).info["record"]["xapp_status"] == "ok"
    pol.close()


def callgrind_total(path: Path) -> int:
    return int(re.search(r"^summary: (\d+)", path.read_text(), re.M).group(1))


def instructions(states: list, tmp: Path, n: int) -> tuple[float, float]:
    """Instructions per decision executed by the RIC process and by the xApp process (valgrind
    callgrind, all threads, user space): each side runs under valgrind once for n and once for 3n
    decisions over ipc, the other side natively; the difference of the totals over 2n cancels
    start-up and shut-down. A count that the machine's load does not change."""
    import pickle

    (tmp / "states.pkl").write_bytes(pickle.dumps(states))
    out = {}
    for side in ("ric", "xapp"):
        totals = []
        for k in (n, 3 * n):
            cg = tmp / f"{side}.{k}.callgrind"
            valgrind = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}")
            proc, endpoint = start_xapp(f"ipc://{tmp}/cg.ipc", tmp / "xapp.log", valgrind if side == "xapp" else ())
            try:
                if side == "ric":
                    subprocess.run([*valgrind, sys.executable, __file__, "--ric-loop", str(k), "--endpoint", endpoint,
                                    "--states", str(tmp / "states.pkl")], check=True, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
                else:
                    ric_loop(endpoint, states, k)
            finally:
                proc.terminate()  # valgrind writes its counts as the xApp exits
                proc.wait(600)
            totals.append(callgrind_total(cg))
        out[side] = (totals[1] - totals[0]) / (2 * n)
    return out["ric"], out["xapp"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decisions", type=int, default=2000, help="timed decisions per transport")
    ap.add_argument("--ues", type=int, default=10, help="UEs per slice (paper cell: 10)")
    ap.add_argument("--instructions", type=int, default=0, metavar="N",
                    help="instead of timing: instructions per decision on each side (valgrind; N and 3N decisions)")
    ap.add_argument("--stages", action="store_true", help="instead: wall and CPU time of each step on each side (ipc)")
    ap.add_argument("--ric-loop", type=int, help=argparse.SUPPRESS)  # internal: the RIC side for --instructions
    ap.add_argument("--endpoint", help=argparse.SUPPRESS)
    ap.add_argument("--states", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ric_loop:
        import pickle

        ric_loop(args.endpoint, pickle.loads(Path(args.states).read_bytes()), args.ric_loop)
        return
    if args.instructions:
        with tempfile.TemporaryDirectory(prefix="bench-xapp-") as tmp:
            ric, xapp = instructions(sample_states(args.ues, 20), Path(tmp), args.instructions)
        print(f"instructions per decision over ipc (paper cell, {3 * args.ues} UEs, xApp serving pf): "
              f"RIC {ric:,.0f}, xApp {xapp:,.0f}")
        return
    if args.stages:
        with tempfile.TemporaryDirectory(prefix="bench-xapp-") as tmp:
            stages(sample_states(args.ues, 20), f"ipc://{tmp}/stages.ipc", args.decisions)
        return
    per_call, per_step = machine_reference()
    print(f"machine reference: {per_call:.2f} us per small numpy call, {per_step:.1f} ns per Python loop step")
    states = sample_states(args.ues, 20)
    from simcore.plugins import make_policy

    pf = make_policy("pf")
    pf_ms = []
    cpu0 = time.process_time()
    for i in range(args.decisions):
        t0 = time.perf_counter()
        pf.decide(states[i % len(states)])
        pf_ms.append((time.perf_counter() - t0) * 1e3)
    pf_cpu = (time.process_time() - cpu0) / args.decisions * 1e3
    from simcore.e2 import encode_indication

    indication = encode_indication(states[0], run_id="0" * 32, seq=1, policy_seed=1, deadline_ms=1000.0)
    size_kb = sum(memoryview(f).nbytes for f in indication) / 1e3
    print(f"paper cell, {3 * args.ues} UEs x 30 PRBs, indication {size_kb:.1f} kB in {len(indication)} frames; PF in-process: median {np.median(pf_ms):.3f} ms "
          f"(CPU {pf_cpu:.3f} ms); codec alone (indication + control, encode + decode), CPU: {codec_ms(states):.3f} ms")
    print(f"{'transport':<16} {'rtt p50':>8} {'rtt p99':>8} {'boundary p50':>13} {'boundary p99':>13} "
          f"{'RIC CPU':>8} {'xApp CPU':>9} {'boundary CPU':>13} {'xApp PF p50':>12} {'bare echo p50':>14} "
          f"{'echo p99':>9}  (ms per decision)")
    with tempfile.TemporaryDirectory(prefix="bench-xapp-") as tmp:
        for label, bind in (("ipc://", f"ipc://{tmp}/xapp.ipc"), ("tcp://127.0.0.1", "tcp://127.0.0.1:*")):
            proc, endpoint = start_xapp(bind, Path(tmp) / "xapp.log")
            try:
                r = measure(endpoint, proc.pid, states, args.decisions)
            finally:
                proc.terminate()
                proc.wait(30)
            echo = echo_rtt_ms(bind.replace("xapp.ipc", "echo.ipc"), args.decisions, indication)
            print(f"{label:<16} {q(r['rtt'], 50):8.3f} {q(r['rtt'], 99):8.3f} {q(r['boundary'], 50):13.3f} "
                  f"{q(r['boundary'], 99):13.3f} {r['ric_cpu']:8.3f} {r['xapp_cpu']:9.3f} "
                  f"{r['ric_cpu'] + r['xapp_cpu'] - pf_cpu:13.3f} {q(r['xapp_pf'], 50):12.3f} "
                  f"{q(echo, 50):14.3f} {q(echo, 99):9.3f}")


if __name__ == "__main__":
    main()
