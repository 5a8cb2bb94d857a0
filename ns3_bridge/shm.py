"""PHY backend ``ns3-shm``: an ns-3 LTE downlink in a child process, one message per TTI over shared memory.

In the style of ns3-ai's message interface (written here from scratch): one shared-memory segment
in /dev/shm holds a fixed header and one fixed-layout block per direction, and both sides work on
it in place (numpy views here, plain pointers in the C++ server, which maps the segment with
Boost.Interprocess). Per TTI:

    engine -> ns-3   prb_owner (R*K int32), power_w (R*K float64), extra_gain (U*R*K float32):
                     shadowing x small-scale fading of the engine's channel at this TTI, per UE,
                     RU and PRB, every entry (see "Gains" below); ns-3 computes the path loss
    ns-3 -> engine   sinr (R*K float64, at the owner, NaN if idle), bits (R*K float64, the bits of
                     the owner's transport block if ns-3 decoded it, spread over its PRBs),
                     mcs (R*K int32), tb_ok (R*K int32: 1 decoded, 0 lost, -1 idle)

Header (uint64 words at offset 0): magic, version, req_seq, rsp_seq, state, tti, command,
server_pid, ns3_subframes, tbs_sent, tbs_decoded, dci_lost, then an error text. The segment is
created here, named per process, and unlinked in ``close()`` whatever happened.

Protocol (who writes what, and in which order)
----------------------------------------------
Ownership of the segment alternates, handed over by the two sequence counters:

1. Start-up: this side writes magic, version and the request arrays (gains 1) before it starts the
   server; the server writes ``server_pid`` and ``ns3_subframes`` during its warm-up and then stores
   ``state = READY`` (or ``ERROR`` with the error text first), both with release semantics
   (``__atomic_store_n(..., __ATOMIC_RELEASE)``). This side polls ``state``.
2. Request n: this side writes owner, power, gain, ``tti`` and ``command``, then stores
   ``req_seq = n`` as its last store. The server polls ``req_seq`` with acquire loads
   (``__atomic_load_n(..., __ATOMIC_ACQUIRE)``) and reads nothing of the request before it sees n.
3. Response n: the server writes sinr, bits, mcs, tb_ok and the counters, then stores
   ``rsp_seq = n`` with release semantics. This side polls ``rsp_seq`` and reads the response
   (copying it out) only after it sees n; it writes nothing until then. Between a response and the
   next request the server touches nothing in the segment (ns-3 reads the gains only while it
   processes a request). ``command = EXIT`` with a new ``req_seq`` ends the server.

Memory ordering on this side: Python has no fences, and numpy's writes through the segment's
buffer are plain stores. The order above still holds on x86-64, and only there, because (a) each
numpy operation is a separate call from the interpreter that has issued all its stores before it
returns, so the store to ``req_seq`` follows every array store in program order (and the load of
``rsp_seq`` precedes every response load); (b) x86-64 is TSO: stores become visible to other cores
in program order (glibc's ``memcpy`` ends its non-temporal-store path with ``sfence``) and loads are
not reordered with older loads, so a plain store is a release and a plain load an acquire; and
(c) the header words are 8-byte aligned (the segment is page-aligned), so each uint64 load or store
is a single access that cannot tear. ARM, POWER and RISC-V reorder plain stores, and Python could
not order them without a compiled fence: ns3-shm refuses to run there (``scenario_problems`` names
``phy.backend``). Both sides wait by spinning briefly, then sleeping in short steps, with a
deadline; the engine also checks that the child is alive, the child that its parent is.

Gains
-----
ns-3 computes every UE's CQI from the reference signals of every RU, i.e. from the whole gain
table, and those CQI reports set the MCS of later grants. The backend therefore declares
``needs_full_gain = True`` and the engine brings every (UE, RU, PRB) entry to the current TTI before
each ``step`` (the built-in PHY reads only the PRB owners' entries, which the engine refreshes alone
for it). As in LTE, a grant's MCS comes from CQI measured in earlier subframes, i.e. on earlier
TTIs' gains.

Random numbers: ns-3's own draws (random access, the error model's decoding) come from its
MRG32k3a generator seeded by ``ns3_seed_run(scenario.seed)`` (see there).

What the server models, and how the engine's scenario maps onto LTE, is described at the top of
``server/oransim_phy_server.cc``, which lists its limits (``ConfigProblems``); ``scenario_problems``
checks the same limits on the scenario, so ``oransim validate`` refuses what the server would. The
points that matter for results:

- ns-3 has no fronthaul quantizer: the reported SINR folds it in with the built-in PHY's formula
  (``LinkModel.prb_sinr(..., sinr_without_fronthaul=)``: ns-3's noise and interference plus the
  fronthaul noise of the serving and of every transmitting RU); ns-3's own decoding uses the SINR
  without it, so with few quantizer bits ns-3 decodes more than the reported SINR supports.
- Transport blocks: one per UE per 6-PRB block per TTI, MCS from ns-3's AMC on the UE's latest CQI
  report, decoded by ns-3's MI-based error model; a lost block delivers nothing (its bits stay in
  the engine's buffer and go out later), there are no HARQ retransmissions.
- Power: one value per UE per block (LTE's P_A), the mean of the allocation's powers on its PRBs
  there; equal per-PRB power (every classic scheduler) is reproduced exactly.
- Association: ns-3 attaches each UE to its serving RU (strongest large-scale gain) for the whole
  run; an allocation that serves a UE from another RU stops the run with an error.
- Timing: one ns-3 subframe per TTI. The server hands each TTI's DCIs and transport blocks to the
  eNB PHYs between two subframes (its MAC-to-channel delay set to 1), so they go out in the next
  subframe and are decoded, or not, by its end, in the same request. The CQI behind a grant of TTI
  t was measured on the channel of TTI t - 6 or t - 7 (ns-3's CQI path: a report every 2
  subframes, 4 subframes in the UE's uplink control queue, then the next subframe indication).
"""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import subprocess
import tempfile
import time
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

from simcore.engine import SimulationError
from simcore.phy import PhyTtiResult

from .build import Ns3BuildError, server_binary

MAGIC = 0x6F72616E73  # "orans" (fits a double: the server reads its config as numbers)
VERSION = 1
HEADER_BYTES = 256
HEADER = ("magic", "version", "req_seq", "rsp_seq", "state", "tti", "command", "server_pid", "ns3_subframes",
          "tbs_sent", "tbs_decoded", "dci_lost")
_H = {name: i for i, name in enumerate(HEADER)}
ERROR_OFFSET = 8 * len(HEADER)
ST_STARTING, ST_READY, ST_ERROR, ST_EXIT = 0, 1, 2, 3
CMD_STEP, CMD_EXIT = 1, 2
# Limits of the server (ConfigProblems in server/oransim_phy_server.cc, where each is explained)
BLOCK_PRBS = 6  # one LTE 1.4 MHz carrier per 6 PRBs
MAX_BLOCKS = 93  # block b at EARFCN 100 + 20 b: from block 93 on, band 4, which overlaps band 1
MAX_UES = 316  # in total over all RUs: one LTE SRS periodicity (<= 320) for every eNB
PATHLOSS_MODELS = ("uma", "umi", "log_distance")
THREEGPP_CARRIER_GHZ = (0.5, 100.0)  # ns-3's 3GPP path-loss models assert this range
NS3_SEED_MODULUS = 2**31 - 1  # ns-3 seeds used: 1 .. 2^31 - 1
#: phy.params of ns3-shm: name -> (smallest value, integer?)
PARAMS = {"timeout_s": (0.0, False), "startup_timeout_s": (0.0, False), "warmup_max_ms": (10, True)}
#: CPUs whose memory order makes numpy's plain stores and loads a release / acquire (module doc)
TSO_MACHINES = ("x86_64", "amd64")


class Ns3PhyError(SimulationError):
    """The ns-3 PHY server could not be started, died, or did not answer in time."""


def _align(n: int, a: int = 64) -> int:
    return (n + a - 1) // a * a


def segment_layout(n_ue: int, n_ru: int, n_prb: int) -> dict:
    """Byte offsets of every array in the segment (the server is told them in its config)."""
    rk, urk = n_ru * n_prb, n_ue * n_ru * n_prb
    off, at = {}, HEADER_BYTES
    for name, nbytes in (("owner", 4 * rk), ("power", 8 * rk), ("gain", 4 * urk), ("sinr", 8 * rk),
                         ("bits", 8 * rk), ("mcs", 4 * rk), ("tbok", 4 * rk)):
        off[name] = at
        at = _align(at + nbytes)
    off["total"] = at
    return off


def ns3_seed_run(seed: int) -> tuple[int, int]:
    """ns-3's (RngSeed, RngRun) for a scenario seed: seed = (run - 1) (2^31 - 1) + (ns3_seed - 1).

    One-to-one on 0 <= seed < 2^63 (the scenario's range), so no two scenario seeds share ns-3's
    random numbers; ns3_seed stays in 1 .. 2^31 - 1 (``RngSeedManager::SetSeed`` takes a uint32 and
    MRG32k3a wants it below its moduli) and the run, ns-3's own way to select independent
    substreams, in 1 .. 2^32 + 3 (``SetRun`` takes a uint64). Seeds below 2^31 - 1 give run 1.
    """
    if not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must be in [0, 2^63), got {seed}")
    run, rest = divmod(int(seed), NS3_SEED_MODULUS)
    return rest + 1, run + 1


def param_problems(params: dict) -> list[tuple[str, str]]:
    """(field, message) for every ``phy.params`` entry ns3-shm cannot take."""
    out = []
    for key, value in params.items():
        if key not in PARAMS:
            out.append((f"phy.params.{key}", f"ns3-shm takes no parameter '{key}' (it takes {', '.join(PARAMS)})"))
            continue
        low, integer = PARAMS[key]
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not (value >= low if integer else value > low):
            want = f"a whole number >= {low}" if integer else f"a number > {low:g}"
            out.append((f"phy.params.{key}", f"must be {want}, got {value!r}"))
    return out


def scenario_problems(s) -> list[tuple[str, str]]:
    """(field, message) for every way this scenario cannot run on ns3-shm: the server's limits
    (``ConfigProblems`` in the server, held to the same verdicts by the tests) and this side's."""
    out = []
    machine = platform.machine().lower()
    if machine not in TSO_MACHINES:
        out.append(("phy.backend", f"ns3-shm's shared-memory handshake relies on x86-64 memory ordering; this "
                                   f"machine is {machine or 'unknown'} (use the builtin PHY)"))
    k = s.cell.prbs_per_ru
    if k % BLOCK_PRBS or k // BLOCK_PRBS > MAX_BLOCKS:
        out.append(("cell.prbs_per_ru", f"ns3-shm maps PRBs onto 6-RB LTE carriers: needs a multiple of 6 up to "
                                        f"{BLOCK_PRBS * MAX_BLOCKS}, got {k}"))
    if s.channel.pathloss not in PATHLOSS_MODELS:
        out.append(("channel.pathloss", f"ns3-shm has ns-3 models for {', '.join(PATHLOSS_MODELS)}, not "
                                        f"'{s.channel.pathloss}'"))
    elif s.channel.pathloss != "log_distance":
        lo, hi = THREEGPP_CARRIER_GHZ
        if not lo <= s.cell.carrier_ghz <= hi:
            out.append(("cell.carrier_ghz", f"ns-3's 3GPP {s.channel.pathloss} model takes {lo:g}-{hi:g} GHz, "
                                            f"got {s.cell.carrier_ghz:g}"))
    if s.n_ues > MAX_UES:
        out.append(("slices", f"ns3-shm: at most {MAX_UES} UEs in total over all RUs (one LTE SRS periodicity "
                              f"for every eNB), got {s.n_ru} RU(s) x {s.n_ues // s.n_ru} = {s.n_ues}"))
    out += param_problems(s.phy.params)
    return out


def server_config(s, geometry, serving_ru, shm_name: str, lay: dict, timeout_s: float = 60.0,
                  warmup_max_ms: int = 5000) -> str:
    """The server's config file: key-value lines, then one ``ru`` line per RU and one ``ue`` line per UE."""
    from simcore.channel import friis_loss_db

    ld = s.channel.log_distance
    n_ue = geometry.ue_slice.size
    lines = {
        "shm": shm_name, "shm_bytes": lay["total"], "magic": MAGIC,
        "n_ue": n_ue, "n_ru": s.n_ru, "n_prb": s.cell.prbs_per_ru, "numerology": s.cell.numerology,
        "carrier_hz": s.cell.carrier_ghz * 1e9, "pathloss": s.channel.pathloss,
        "ld_exponent": ld.exponent, "ld_d0_m": ld.reference_distance_m,
        "ld_l0_db": ld.reference_loss_db if ld.reference_loss_db is not None
        else friis_loss_db(ld.reference_distance_m, s.cell.carrier_ghz),
        "ue_height_m": s.channel.ue_height_m,
        # ns-3's thermal noise is -174 dBm/Hz: a different scenario density goes into the NF
        "noise_figure_db": s.cell.noise_figure_db + (s.cell.noise_psd_dbm_hz + 174.0),
        "ns3_seed": ns3_seed_run(s.seed)[0], "ns3_run": ns3_seed_run(s.seed)[1],
        "timeout_s": float(timeout_s), "warmup_max_ms": warmup_max_ms,
        **{f"off_{k}": v for k, v in lay.items() if k != "total"},
    }
    text = [f"{k} {float(v)!r}" if isinstance(v, float) else f"{k} {v}" for k, v in lines.items()]
    for ru in s.cell.rus:
        text.append(f"ru {float(ru.x_m)!r} {float(ru.y_m)!r} {float(ru.height_m)!r} {float(ru.max_power_dbm)!r}")
    for u in range(n_ue):
        los = " ".join("1" if x else "0" for x in geometry.los[u])
        text.append(f"ue {float(geometry.ue_xy_m[u, 0])!r} {float(geometry.ue_xy_m[u, 1])!r} {int(serving_ru[u])} {los}")
    return "\n".join(text) + "\n"


class Ns3ShmPhy:
    """``PhyBackend`` that delegates SINR and decoding to the ns-3 PHY server (see module doc)."""

    name = "ns3-shm"
    check_scenario = staticmethod(scenario_problems)  # used by `oransim validate` and `run` before starting
    needs_full_gain = True  # ns-3 computes every UE's CQI from the whole table (module doc, "Gains")
    server_source: Path | None = None  # another server source to build and run (benchmarks' reference)

    def __init__(self, timeout_s: float = 60.0, startup_timeout_s: float = 900.0, warmup_max_ms: int = 5000):
        bad = param_problems({"timeout_s": timeout_s, "startup_timeout_s": startup_timeout_s,
                              "warmup_max_ms": warmup_max_ms})
        if bad:
            raise ValueError("; ".join(f"{f.removeprefix('phy.params.')} {m}" for f, m in bad))
        self.timeout_s = float(timeout_s)
        self.startup_timeout_s = float(startup_timeout_s)
        self.warmup_max_ms = int(warmup_max_ms)
        self.proc: subprocess.Popen | None = None
        self.shm: shared_memory.SharedMemory | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.log_path: Path | None = None
        self.counters = {"warmup_subframes": 0, "ns3_subframes": 0, "tbs_sent": 0, "tbs_decoded": 0, "dci_lost": 0}
        self.binary: Path | None = None
        self._broken = False

    # ------------------------------------------------------------------------------ set-up
    def open(self, scenario, geometry, link, *, channel=None, serving_ru=None) -> None:
        problems = scenario_problems(scenario)
        if problems:
            raise Ns3PhyError("; ".join(f"{f}: {m}" for f, m in problems))
        if channel is None or serving_ru is None:
            raise Ns3PhyError("ns3-shm needs the engine's channel and serving RUs (open(..., channel=, serving_ru=))")
        try:
            self.binary = binary = (server_binary(source=self.server_source) if self.server_source
                                    else server_binary())
        except Ns3BuildError as exc:
            raise Ns3PhyError(str(exc)) from None
        s = scenario
        n_ue, n_ru, n_prb = geometry.ue_slice.size, s.n_ru, s.cell.prbs_per_ru
        self.n_ue, self.n_ru, self.n_prb = n_ue, n_ru, n_prb
        self.link = link
        self.serving_ru = np.asarray(serving_ru)
        self._checked_alloc = None
        # the server computes path loss; the engine's shadowing x fading goes over as extra gain
        self._pathloss_lin = 10.0 ** (np.asarray(channel.pathloss_db, dtype=float) / 10.0)  # (U, R)
        lay = segment_layout(n_ue, n_ru, n_prb)
        name = f"oransim_{os.getpid()}_{secrets.token_hex(4)}"
        self.shm = shared_memory.SharedMemory(name=name, create=True, size=lay["total"])
        try:
            buf = self.shm.buf
            self.header = np.ndarray((len(HEADER),), np.uint64, buf, 0)
            if self.header.ctypes.data % 64:  # single-access uint64 words (module doc, "Protocol")
                raise Ns3PhyError("the shared-memory segment is not aligned")
            self.header[:] = 0
            rk, urk = n_ru * n_prb, n_ue * n_ru * n_prb
            self.owner = np.ndarray((rk,), np.int32, buf, lay["owner"])
            self.power = np.ndarray((rk,), np.float64, buf, lay["power"])
            self.gain = np.ndarray((urk,), np.float32, buf, lay["gain"])
            self.sinr = np.ndarray((rk,), np.float64, buf, lay["sinr"])
            self.bits = np.ndarray((rk,), np.float64, buf, lay["bits"])
            self.mcs = np.ndarray((rk,), np.int32, buf, lay["mcs"])
            self.tb_ok = np.ndarray((rk,), np.int32, buf, lay["tbok"])
            self.owner[:] = -1
            self.power[:] = 0.0
            self.gain[:] = 1.0
            self.header[_H["magic"]] = MAGIC
            self.header[_H["version"]] = VERSION

            self._tmp = tempfile.TemporaryDirectory(prefix="oransim-ns3-")
            cfg = Path(self._tmp.name) / "server.cfg"
            cfg.write_text(self._config_text(s, geometry, serving_ru, name, lay))
            self.log_path = Path(self._tmp.name) / "server.log"
            log = open(self.log_path, "wb")
            self.proc = subprocess.Popen([str(binary), str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
            log.close()
            self._wait(lambda: self.header[_H["state"]] != ST_STARTING, self.startup_timeout_s, "start up")
            if self.header[_H["state"]] != ST_READY:
                raise Ns3PhyError(f"the ns-3 PHY server failed to start: {self._server_error()}")
            self.counters["warmup_subframes"] = int(self.header[_H["ns3_subframes"]])
        except BaseException:
            self.close()
            raise

    def _config_text(self, s, geometry, serving_ru, shm_name: str, lay: dict) -> str:
        return server_config(s, geometry, serving_ru, shm_name, lay, self.timeout_s, self.warmup_max_ms)

    # ------------------------------------------------------------------------------- waiting
    def _server_error(self) -> str:
        raw = bytes(self.shm.buf[ERROR_OFFSET:HEADER_BYTES]).split(b"\0", 1)[0].decode(errors="replace").strip()
        if raw:
            return raw
        return self._log_tail() or "no message"

    def _log_tail(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines()
                     if ln.strip() and "Failed to materialize" not in ln]
        except OSError:
            return ""
        return lines[-1].strip() if lines else ""

    def _wait(self, done, deadline_s: float, what: str) -> None:
        t0 = time.monotonic()
        spins = 0
        while not done():
            spins += 1
            if spins < 2000:
                continue
            time.sleep(20e-6 if spins < 20000 else 1e-3)
            if spins % 64 == 0:
                code = self.proc.poll()
                if code is not None and not done():
                    self._broken = True
                    why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
                    detail = self._server_error() if self.header[_H["state"]] == ST_ERROR else self._log_tail()
                    raise Ns3PhyError(f"the ns-3 PHY server died ({why}) during {what}"
                                      + (f": {detail}" if detail else ""))
                if time.monotonic() - t0 > deadline_s:
                    self._broken = True
                    raise Ns3PhyError(f"the ns-3 PHY server did not {what} within {deadline_s:g} s "
                                      f"(still running, pid {self.proc.pid}); stopped it")

    # ---------------------------------------------------------------------------------- TTIs
    def _check_association(self, owner: np.ndarray) -> None:
        """ns-3 attaches each UE to its serving RU for the whole run: refuse other associations."""
        r, k = np.nonzero((owner >= 0) & (self.serving_ru[np.maximum(owner, 0)] != np.arange(owner.shape[0])[:, None]))
        if r.size:
            u = int(owner[r[0], k[0]])
            raise Ns3PhyError(f"ns3-shm attaches UE {u} to its serving RU {int(self.serving_ru[u])} (strongest "
                              f"large-scale gain), but the policy gave it PRB {int(k[0])} of RU {int(r[0])}")

    def step(self, tti: int, allocation, gain: np.ndarray) -> PhyTtiResult:
        owner = allocation.prb_owner
        if allocation is not self._checked_alloc:  # allocations change only at decisions
            self._check_association(owner)
            self._checked_alloc = allocation
        self.owner[:] = owner.ravel()
        self.power[:] = allocation.power_w.ravel()
        np.multiply(gain, self._pathloss_lin[:, :, None], out=self.gain.reshape(gain.shape), casting="unsafe")
        h = self.header
        h[_H["tti"]] = tti
        h[_H["command"]] = CMD_STEP
        seq = h[_H["req_seq"]] + np.uint64(1)
        h[_H["req_seq"]] = seq  # the last store of the request: a release on x86-64 (module doc, "Protocol")
        self._wait(lambda: h[_H["rsp_seq"]] == seq, self.timeout_s, f"answer TTI {tti}")
        self.counters.update({k: int(h[_H[k]]) for k in ("ns3_subframes", "tbs_sent", "tbs_decoded", "dci_lost")})
        shape = owner.shape
        # ns-3 has no fronthaul quantizer: the link model adds its noise to ns-3's SINR (see module doc)
        sinr = self.link.prb_sinr(gain, owner, allocation.power_w, sinr_without_fronthaul=self.sinr.reshape(shape))
        return PhyTtiResult(prb_sinr=sinr, prb_bits=self.bits.reshape(shape).copy())

    # ------------------------------------------------------------------------------ teardown
    def close(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None and self._broken:
                self.proc.kill()  # hung or misbehaving: no goodbye
                self.proc.wait(timeout=10)
            elif self.proc is not None and self.proc.poll() is None:
                if self.shm is not None:
                    h = self.header
                    h[_H["command"]] = CMD_EXIT
                    h[_H["req_seq"]] = h[_H["req_seq"]] + np.uint64(1)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
        finally:
            self.proc = None
            if self.shm is not None:
                for name in ("header", "owner", "power", "gain", "sinr", "bits", "mcs", "tb_ok"):
                    self.__dict__.pop(name, None)  # views must go before the buffer is released
                try:
                    self.shm.close()
                finally:
                    self.shm.unlink()
                    self.shm = None
            if self._tmp is not None:
                keep = os.environ.get("ORANSIM_NS3_LOG")  # a path to keep the server's log at (debugging)
                if keep and self.log_path is not None and self.log_path.exists():
                    shutil.copyfile(self.log_path, keep)
                self._tmp.cleanup()
                self._tmp = None

    def info(self) -> dict:
        return {"ns3": "3.44 (LTE; server ns3_bridge/server/oransim_phy_server.cc)",
                **self.counters, "server_binary": str(self.binary) if self.binary else None}

    @property
    def segment_name(self) -> str | None:
        return None if self.shm is None else self.shm.name
