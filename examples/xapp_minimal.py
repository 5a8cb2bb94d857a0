"""A whole xApp in plain pyzmq + numpy (no oransim import), speaking oransim.e2/1 (docs/xapp.md).

Weighted max-rate: each PRB of each RU goes to the backlogged UE (served by that RU) with the highest
slice weight x rate on it; each RU splits its power equally over its PRBs. It ignores per-slice
power caps: where one is broken, the RIC refuses the answer (invalid) and falls back. Run it as
`python examples/xapp_minimal.py tcp://127.0.0.1:5555`; the RIC: `policy: {name: xapp, params: {endpoint: ...}}`.
"""
import json
import sys

import numpy as np
import zmq

SCHEMA = "oransim.e2/1"


def decide(a, n_ru, n_prb):
    ue_ru, owner = a["serving_ru"].astype("<i8"), np.full((n_ru, n_prb), -1, dtype="<i8")
    score = a["slice_weight"][a["slice_id"]][:, None] * a["prb_rate_bps"] * (a["buffer_bits"] > 0)[:, None]
    for r in range(n_ru):
        mine = np.flatnonzero(ue_ru == r)
        if mine.size:
            best = mine[np.argmax(score[mine], axis=0)]  # (K,) best UE of this RU on each PRB
            owner[r] = np.where(score[best, np.arange(n_prb)] > 0, best, -1)
    power = np.where(owner >= 0, (a["ru_max_power_w"] / n_prb)[:, None], 0.0).astype("<f8")
    return {"ue_ru": ue_ru, "prb_owner": owner, "power_w": power}


def message(head, kind, arrays=(), **extra):
    entries, parts, offset = [], [], 0
    for name, a in arrays:  # one payload frame; each array at an offset that is a multiple of 8 bytes
        entries.append({"name": name, "dtype": a.dtype.str, "shape": list(a.shape), "offset": offset})
        parts += [a.tobytes(), bytes(-a.nbytes % 8)]
        offset += a.nbytes + (-a.nbytes % 8)
    h = {"schema": SCHEMA, "kind": kind, "run_id": head.get("run_id", ""), "seq": head.get("seq", -1), **extra}
    return [json.dumps({**h, "arrays": entries}).encode(), *([b"".join(parts)] if parts else [])]


sock = zmq.Context().socket(zmq.REP)
sock.bind(sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5555")
while True:
    head, *payload = sock.recv_multipart()
    head = json.loads(head)
    if head.get("schema") != SCHEMA or head.get("role") != "full":
        sock.send_multipart(message(head, "error", reason=f"this xApp speaks {SCHEMA}, role full only"))
        continue
    a = {e["name"]: np.frombuffer(payload[0], e["dtype"], int(np.prod(e["shape"])), e["offset"]).reshape(e["shape"])
         for e in head["arrays"]}
    sock.send_multipart(message(head, "control", decide(a, head["dims"]["R"], head["dims"]["K"]).items()))
