"""A whole xApp in plain pyzmq + numpy (no oransim import), speaking oransim.e2/2 (docs/xapp.md).

Weighted max-rate: each PRB of each RU goes to the backlogged UE (served by that RU) with the highest
slice weight x rate on it; each RU splits its power equally over its PRBs. It ignores per-slice
power caps: where one is broken, the RIC refuses the answer (invalid) and falls back. Run it as
`python examples/xapp_minimal.py tcp://127.0.0.1:5555`; the RIC: `policy: {name: xapp, params: {endpoint: ...}}`.
"""
import json
import sys

import numpy as np
import zmq

SCHEMA = "oransim.e2/2"


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


def message(kind, run_id, prelude, arrays=(), **extra):  # prelude: seq (<i8) [+ decide_ms (<f8), NaN: none]
    entries, parts, offset = [], [np.array(prelude[:1], "<i8").tobytes() + np.array(prelude[1:], "<f8").tobytes()], 16
    for name, a in arrays:  # after the 16-byte prelude; each array at an offset that is a multiple of 8 bytes
        entries.append({"name": name, "dtype": a.dtype.str, "shape": list(a.shape), "offset": offset})
        parts += [bytes(offset - sum(map(len, parts))), a.tobytes()]
        offset += a.nbytes + (-a.nbytes % 8)
    head = {"schema": SCHEMA, "kind": kind, "run_id": run_id, **extra, "arrays": entries}
    return [json.dumps(head).encode(), b"".join(parts)]


sock = zmq.Context().socket(zmq.REP)
sock.bind(sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5555")
while True:
    head, *payload = sock.recv_multipart()
    head, seq = json.loads(head), int(np.frombuffer(payload[0][:8], "<i8")[0]) if payload else -1
    if head.get("schema") != SCHEMA or head.get("role") != "full":
        sock.send_multipart(message("error", head.get("run_id", ""), (seq,), reason=f"this xApp speaks {SCHEMA}, role full"))
        continue
    a = {e["name"]: np.frombuffer(payload[0], e["dtype"], int(np.prod(e["shape"])), e["offset"]).reshape(e["shape"])
         for e in head["arrays"]}
    sock.send_multipart(message("control", head["run_id"], (seq, np.nan), decide(a, head["dims"]["R"], head["dims"]["K"]).items()))
