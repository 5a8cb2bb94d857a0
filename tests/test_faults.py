"""The fault battery: bad inputs and faults against the CLI, each with its exact expected outcome.

Every case runs ``oransim`` in-process in a fresh folder holding the case's files, then checks:
the exit code; the stderr lines (their number, and one naming the field, option or path at fault);
no traceback and no "internal error" line; every file that was there before is still there with
the same content (unless the case replaces it on purpose); no temporary file or folder left.
Cases that must fail before any work also make simulating an error, so a check that came only
after the simulation would show. The classes follow issue 9: data loss, tracebacks (unreadable
files, extreme numbers, output paths, damaged run folders, evaluate's options), wrong or unclear
messages and silent acceptance. Signals and concurrent runs need real processes:
``test_faults_processes.py``.
"""

from __future__ import annotations

import errno
import json
import shutil
import signal
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from fault_helpers import (SMALL, assert_clean_failure, assert_conserved_folder, invoke, scenario_text, set_path,
                           snapshot, temporaries)

RUN = object()  # in `files`: a copy of a real run folder
DIR = object()  # in `files`: an empty folder


@dataclass
class Case:
    args: tuple
    code: int
    expect: str
    files: dict = field(default_factory=dict)
    lines: int = 1
    replaced: tuple = ()  # paths the case replaces on purpose (their old content may go)
    setup: Callable | None = None  # (tmp_path, monkeypatch) -> None: a fault to inject
    check: Callable | None = None  # (tmp_path) -> None: what else must hold afterwards


def _no_work(tmp, mp):
    """Simulating or sampling states is a failure: the case must be refused before."""
    import oransim.evaluate
    import simcore.run

    def refuse(*a, **k):
        raise AssertionError("the work started before the problem was found")

    mp.setattr(simcore.run, "simulate", refuse)
    mp.setattr(oransim.evaluate, "sample_states", refuse)


def _write_fails(exc_factory, at_call: int = 1):
    """Make the n-th table write of the run folder raise (a table chunk spooled while the run goes,
    or a table written when the folder is saved)."""
    def setup(tmp, mp):
        import simcore.recorder as rec
        import simcore.records as records

        real, real_append, calls = rec._write_table, records.TableSink.append, []

        def write(df, path):
            calls.append(path)
            if len(calls) == at_call:
                raise exc_factory(tmp)
            return real(df, path)

        def append(sink, df):
            calls.append(sink.path)
            if len(calls) == at_call:
                raise exc_factory(tmp)
            return real_append(sink, df)

        mp.setattr(rec, "_write_table", write)
        mp.setattr(records.TableSink, "append", append)
    return setup


def _rival_appears(tmp, mp):
    """Another run publishes the same folder while this one writes its tables."""
    import simcore.recorder as rec

    real = rec._write_table

    def write(df, path):
        if not (tmp / "r").exists():
            shutil.copytree(tmp / "rival", tmp / "r")
        return real(df, path)

    mp.setattr(rec, "_write_table", write)


def _no_renameat2(tmp, mp):
    import simcore.outputs

    mp.setattr(simcore.outputs, "_renameat2", None)


def _seed(tmp, folder="r") -> int:
    return json.loads((tmp / folder / "manifest.json").read_text())["seed"]


def _replaced_with_seed(seed: int):
    def check(tmp):
        assert _seed(tmp) == seed, "the run folder was not replaced"
        assert_conserved_folder(tmp / "r")
    return check


def _same_as_rival(tmp):
    assert snapshot(tmp / "r") == snapshot(tmp / "rival"), "the rival's run folder was changed"


def _nothing_at(name: str):
    def check(tmp):
        assert not (tmp / name).exists(), f"{name} was written"
    return check


S = scenario_text()
LONG = scenario_text({"duration_s": 60.0})  # far too long to simulate in a test: path checks must come first
RO = "/sys/oransim-fault-test"  # read-only even for root (chmod does not stop root)

CASES: dict[str, Case] = {
    # ---------------------------------------------------------------- data loss: --overwrite, races
    "overwrite_regular_file": Case(("run", "s.yaml", "--out", "afile", "--overwrite"), 2, "is a file, not a run folder",
                                   {"s.yaml": S, "afile": "precious"}, setup=_no_work),
    "overwrite_user_folder": Case(("run", "s.yaml", "--out", "mine", "--overwrite"), 2, "has no manifest.json",
                                  {"s.yaml": S, "mine/notes.txt": "mine"}, setup=_no_work),
    "overwrite_runs_parent": Case(("run", "s.yaml", "--out", "runs", "--overwrite"), 2, "not an oransim run folder",
                                  {"s.yaml": S, "runs/a": RUN}, setup=_no_work),
    "overwrite_cwd": Case(("run", "s.yaml", "--out", ".", "--overwrite"), 2, "work has no manifest.json",
                          {"s.yaml": S}, setup=_no_work),
    "overwrite_run_with_user_file": Case(("run", "s.yaml", "--out", "r", "--overwrite"), 2,
                                         "holds files oransim did not write (notes.txt)",
                                         {"s.yaml": S, "r": RUN, "r/notes.txt": "mine"}, setup=_no_work),
    "overwrite_unmarked_manifest": Case(("run", "s.yaml", "--out", "f", "--overwrite"), 2, "no 'oransim_run' marker",
                                        {"s.yaml": S, "f/manifest.json": '{"seed": 1}'}, setup=_no_work),
    "overwrite_garbled_manifest": Case(("run", "s.yaml", "--out", "f", "--overwrite"), 2, "manifest.json is unreadable",
                                       {"s.yaml": S, "f/manifest.json": "{not json"}, setup=_no_work),
    "overwrite_symlink": Case(("run", "s.yaml", "--out", "link", "--overwrite"), 2, "is a symbolic link",
                              {"s.yaml": S, "r": RUN, "link": ("symlink", "r")}, setup=_no_work),
    "exists_without_overwrite": Case(("run", "s.yaml", "--out", "r"), 2, "already exists (pass --overwrite",
                                     {"s.yaml": S, "r": RUN}, setup=_no_work),
    "exists_empty_folder": Case(("run", "s.yaml", "--out", "empty"), 2, "already exists", {"s.yaml": S, "empty": DIR},
                                setup=_no_work),
    "overwrite_run_folder_ok": Case(("run", "s.yaml", "--out", "r", "--overwrite", "--seed", "11"), 0, "",
                                    {"s.yaml": S, "r": RUN, "r/report.png": "old figure"}, lines=0,
                                    replaced=("r",), check=_replaced_with_seed(11)),
    "overwrite_without_renameat2": Case(("run", "s.yaml", "--out", "r", "--overwrite", "--seed", "12"), 0, "",
                                        {"s.yaml": S, "r": RUN}, lines=0, replaced=("r",), setup=_no_renameat2,
                                        check=_replaced_with_seed(12)),
    "race_rival_publishes_first": Case(("run", "s.yaml", "--out", "r"), 1, "appeared while this run was working",
                                       {"s.yaml": S, "rival": RUN}, setup=_rival_appears, check=_same_as_rival),
    "race_without_renameat2": Case(("run", "s.yaml", "--out", "r"), 1, "appeared while this run was working",
                                   {"s.yaml": S, "rival": RUN},
                                   setup=lambda t, m: (_no_renameat2(t, m), _rival_appears(t, m)), check=_same_as_rival),
    "disk_full_while_writing_keeps_old": Case(
        ("run", "s.yaml", "--out", "r", "--overwrite"), 1, "No space left on device; the existing folder is unchanged",
        {"s.yaml": S, "r": RUN}, setup=_write_fails(lambda t: OSError(errno.ENOSPC, "No space left on device"), 2)),
    "disk_full_while_writing_new": Case(
        ("run", "s.yaml", "--out", "new"), 1, "No space left on device; nothing was written", {"s.yaml": S},
        setup=_write_fails(lambda t: OSError(errno.ENOSPC, "No space left on device")), check=_nothing_at("new")),
    "signal_while_saving": Case(("run", "s.yaml", "--out", "r", "--overwrite"), 143, "stopped by signal 15",
                                {"s.yaml": S, "r": RUN},
                                setup=_write_fails(lambda t: __import__("oransim.guard").guard.Stopped(signal.SIGTERM), 3)),
    # ------------------------------------------------- tracebacks: files that cannot be a scenario
    "latin1_file": Case(("validate", "s.yaml"), 2, "line 1: not UTF-8 text: byte 0xe9", {"s.yaml": b"name: caf\xe9\n"}),
    "binary_file": Case(("validate", "s.yaml"), 2, "a binary file", {"s.yaml": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"}),
    "huge_file": Case(("validate", "s.yaml"), 2, "larger than 1 MiB", {"s.yaml": "# x\n" * 300_000}),
    "folder_as_scenario": Case(("validate", "d"), 2, "cannot read: Is a directory", {"d": DIR}),
    "missing_scenario": Case(("run", "nope.yaml"), 2, "nope.yaml: (file): cannot read: No such file"),
    "control_character": Case(("validate", "s.yaml"), 2, "character U+0007 is not allowed", {"s.yaml": "name: a\x07\n"}),
    "deep_nesting": Case(("validate", "s.yaml"), 2, "nested more than 64 levels deep",
                         {"s.yaml": "a: " + "[" * 200 + "]" * 200}),
    "alias_bomb": Case(("validate", "s.yaml"), 2, "expands to more than 200,000 values",
                       {"s.yaml": "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
                           f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdef", "bcdefg"))
                        + "policy: {name: pf, params: {x: *g}}\n"}),
    "python_tag": Case(("validate", "s.yaml"), 2, "could not determine a constructor",
                       {"s.yaml": "name: !!python/object/apply:os.system [ls]\n"}),
    "two_documents": Case(("validate", "s.yaml"), 2, "but found another document", {"s.yaml": "seed: 1\n---\nseed: 2\n"}),
    "tab_indent": Case(("validate", "s.yaml"), 2, "YAML syntax error", {"s.yaml": "cell:\n\tprbs_per_ru: 6\n"}),
    # ------------------------------------------------------------- tracebacks: output paths, before work
    "out_name_too_long": Case(("run", "s.yaml", "--out", "x" * 250), 2, "name too long", {"s.yaml": LONG}, setup=_no_work),
    "out_path_too_long": Case(("run", "s.yaml", "--out", "/".join(["d" * 200] * 21)), 2, "path too long",
                              {"s.yaml": LONG}, setup=_no_work),
    "out_under_a_file": Case(("run", "s.yaml", "--out", "afile/run"), 2, "afile is a file, not a folder",
                             {"s.yaml": LONG, "afile": "x"}, setup=_no_work),
    "out_deep_under_a_file": Case(("run", "s.yaml", "--out", "afile/a/b/c"), 2, "is a file, not a folder",
                                  {"s.yaml": LONG, "afile": "x"}, setup=_no_work),
    "out_read_only": Case(("run", "s.yaml", "--out", RO), 2, "cannot write in /sys", {"s.yaml": LONG}, setup=_no_work),
    "out_dot": Case(("run", "s.yaml", "--out", "."), 2, "work already exists", {"s.yaml": LONG}, setup=_no_work),
    "out_root": Case(("run", "s.yaml", "--out", "/", "--overwrite"), 2, "--out: / is not a usable name", {"s.yaml": LONG},
                     setup=_no_work),
    "out_disk_full": Case(("run", "s.yaml", "--out", "r"), 2, "MiB free; the output needs about", {"s.yaml": LONG},
                          setup=lambda t, m: (_no_work(t, m), m.setattr("shutil.disk_usage",
                                                                        lambda p: shutil._ntuple_diskusage(1, 1, 0)))),
    "out_default_name_is_safe": Case(("run", "s.yaml"), 2, "already exists", {"s.yaml": S, "runs/small-pf-seed3": DIR},
                                     setup=_no_work),
    # ------------------------------------------------------------------ tracebacks: damaged run folders
    "report_no_packets": Case(("report", "np"), 0, "np: note: no packet rows (record.packets was false)", {"np": "@np"}),
    "report_one_tti": Case(("report", "one"), 0, "", {"one": "@one"}, lines=0),
    "report_truncated_parquet": Case(("report", "r"), 2, "packets.parquet: unreadable Parquet",
                                     {"r": RUN, "r/packets.parquet": ("truncate", 200)}),
    "report_empty_manifest": Case(("report", "r"), 2, "manifest.json: not valid JSON", {"r": RUN, "r/manifest.json": ""}),
    "report_object_manifest": Case(("report", "r"), 2, "manifest.json: has no valid 'scenario'",
                                   {"r": RUN, "r/manifest.json": "{}"}),
    "report_list_manifest": Case(("report", "r"), 2, "is a JSON list", {"r": RUN, "r/manifest.json": "[]"}),
    "report_swapped_tables": Case(("report", "r"), 2, "packets.parquet: not the packets table",
                                  {"r": RUN, "r/packets.parquet": ("copy", "r/tti.parquet")}),
    "report_missing_table": Case(("report", "r"), 2, "missing tti.parquet", {"r": RUN, "r/tti.parquet": ("delete",)}),
    "report_markup_in_names": Case(("report", "r"), 0, "", {"r": RUN, "r/manifest.json": ("edit", {
        "scenario.name": "[/x]", "policy.name": "[bold", "phy.backend": "[/]"})}, lines=0),
    "report_figure_is_a_folder": Case(("report", "r"), 2, "figure: ", {"r": RUN, "r/report.png": DIR}),
    "report_no_folder": Case(("report", "nope"), 2, "nope: not a run folder (no such folder)"),
    "report_on_a_file": Case(("report", "afile"), 2, "not a run folder (not a folder)", {"afile": "x"}),
    "report_figure_under_file": Case(("report", "r", "--figure", "afile/x.png"), 2, "afile is a file, not a folder",
                                     {"r": RUN, "afile": "x"}),
    "report_figure_not_png": Case(("report", "r", "--figure", "s.yaml"), 2, "--figure: s.yaml must end in .png",
                                  {"r": RUN, "s.yaml": S}),
    "report_figure_over_user_file": Case(("report", "r", "--figure", "photo.png"), 2, "is not a PNG image; not replaced",
                                         {"r": RUN, "photo.png": "not a png"}),
    "report_figure_folder": Case(("report", "r", "--figure", "d.png"), 2, "exists and is not a file",
                                 {"r": RUN, "d.png": DIR}),
    "report_figure_read_only": Case(("report", "r", "--figure", RO + "/x.png"), 2, "cannot write in /sys", {"r": RUN}),
    # --------------------------------------------------------------------- tracebacks: evaluate's options
    "evaluate_no_policies": Case(("evaluate", "s.yaml", "--policies", ""), 2, "--policies: no policy named",
                                 {"s.yaml": S}, setup=_no_work),
    "evaluate_blank_policies": Case(("evaluate", "s.yaml", "--policies", " , "), 2, "--policies: no policy named",
                                    {"s.yaml": S}, setup=_no_work),
    "evaluate_unknown_policy": Case(("evaluate", "s.yaml", "--policies", "pf,nope"), 2, "unknown policy 'nope'",
                                    {"s.yaml": S}, setup=_no_work),
    "evaluate_policy_twice": Case(("evaluate", "s.yaml", "--policies", "pf,pf"), 2, "'pf' is named twice",
                                  {"s.yaml": S}, setup=_no_work),
    "evaluate_negative_seed": Case(("evaluate", "s.yaml", "--seed", "-1"), 2, "--seed: states use seeds -1..",
                                   {"s.yaml": S}, setup=_no_work),
    "evaluate_seed_overflow": Case(("evaluate", "s.yaml", "--seed", str(2**63 - 2)), 2, "--seed:", {"s.yaml": S},
                                   setup=_no_work),
    "evaluate_optimum_bogus": Case(("evaluate", "s.yaml", "--optimum", "bogus"), 2,
                                   "--optimum: 'bogus' is not an optimum", {"s.yaml": S}, setup=_no_work),
    "evaluate_optimum_pf": Case(("evaluate", "s.yaml", "--optimum", "pf"), 2, "--optimum: 'pf' is not an optimum",
                                {"s.yaml": S}, setup=_no_work),
    "evaluate_out_under_file": Case(("evaluate", "s.yaml", "--out", "afile/t.csv"), 2, "afile is a file, not a folder",
                                    {"s.yaml": S, "afile": "x"}, setup=_no_work),
    "evaluate_out_not_csv": Case(("evaluate", "s.yaml", "--out", "s.yaml"), 2, "--out: s.yaml must end in .csv",
                                 {"s.yaml": S}, setup=_no_work),
    "evaluate_out_exists": Case(("evaluate", "s.yaml", "--out", "t.csv"), 2, "t.csv already exists (pass --overwrite",
                                {"s.yaml": S, "t.csv": "mine"}, setup=_no_work),
    "evaluate_out_read_only": Case(("evaluate", "s.yaml", "--out", RO + "/t.csv"), 2, "cannot write in /sys",
                                   {"s.yaml": S}, setup=_no_work),
    "evaluate_warmup_too_long": Case(("evaluate", "s.yaml", "--warmup-tti", "4000000"), 2, "--warmup-tti:",
                                     {"s.yaml": S}, setup=_no_work),
    "evaluate_bad_policy_params": Case(("evaluate", "s.yaml"), 2, "policy.params.period_tti",
                                       {"s.yaml": scenario_text({"policy.params": {"period_tti": 0.5}})}, setup=_no_work),
    # ---------------------------------------------------------------- run options that override fields
    "run_seed_negative": Case(("run", "s.yaml", "--seed", "-1"), 2, "--seed: Input should be greater than or equal to 0",
                              {"s.yaml": S}, setup=_no_work),
    "run_duration_nan": Case(("run", "s.yaml", "--duration", "nan"), 2, "--duration: Input should be a finite number",
                             {"s.yaml": S}, setup=_no_work),
    "run_duration_below_tti": Case(("run", "s.yaml", "--duration", "1e-6"), 2, "--duration: shorter than one TTI",
                                   {"s.yaml": S}, setup=_no_work),
    "run_unknown_policy": Case(("run", "s.yaml", "--policy", "nope"), 2, "policy.name: unknown name 'nope'",
                               {"s.yaml": S}, setup=_no_work),
    "run_unknown_phy": Case(("run", "s.yaml", "--phy", "nope"), 2, "phy.backend: unknown name 'nope'",
                            {"s.yaml": S}, setup=_no_work),
}

# Scenario contents that both `validate` and `run` must refuse with the same line (validate checks
# everything run checks): (changes to SMALL or raw text, the text the line must hold).
BAD_SCENARIOS = {
    "jitter_inf": ({"slices[2].traffic.jitter_ms": float("inf")}, "slices[2].traffic.jitter_ms: Input should be a finite"),
    "capacity_inf": ({"fronthaul.capacity_mbps": float("inf")}, "fronthaul.capacity_mbps: Input should be a finite"),
    "sampling_rate_tiny": ({"fronthaul.sampling_rate_msps": 5e-324}, "fronthaul.sampling_rate_msps: 4.94066e-324 Msps is below"),
    "period_tiny": ({"slices[2].traffic.period_ms": 1e-6, "duration_s": 60.0}, "slices[2].traffic.period_ms"),
    "trajectories_huge": ({"cell.rus": [{"x_m": 100.0 * i} for i in range(64)], "cell.prbs_per_ru": 275,
                           "scheduling.interval_tti": 100000, "duration_s": 100.0, "record.tti": False,
                           "slices": [SMALL["slices"][0] | {"ues": 1}]}, "scheduling.interval_tti"),
    "packets_memory": ({"slices[1].traffic.rate_pps": 1e6, "slices[1].ues": 1990, "duration_s": 3600.0},
                       "slices[1].traffic.rate_pps: the run needs about"),
    "ftp_one_byte_packets": ({"slices[3].traffic.packet_bytes": 1, "slices[3].traffic.file_kbytes": 1e6,
                              "duration_s": 100.0}, "slices[3].traffic.packet_bytes"),
    "power_nan": ({"cell.rus[0].max_power_dbm": float("nan")}, "cell.rus[0].max_power_dbm: Input should be a finite number"),
    "ru_position_nan": ({"cell.rus[0].x_m": float("nan")}, "cell.rus[0].x_m: Input should be a finite number"),
    "ru_position_far": ({"cell.rus[0].y_m": 1e300}, "cell.rus[0].y_m: Input should be less than or equal to 1000000"),
    "weight_inf": ({"slices[0].weight": float("inf")}, "slices[0].weight: Input should be a finite number"),
    "weight_negative_inf": ({"slices[1].weight": float("-inf")}, "slices[1].weight: Input should be a finite number"),
    "ues_true": ({"slices[0].ues": True}, "slices[0].ues: Input should be a valid integer (got True)"),
    "ues_float": ({"slices[0].ues": 2.0}, "slices[0].ues: Input should be a valid integer (got 2.0)"),
    "numerology_string": ({"cell.numerology": "1"}, "cell.numerology: Input should be a valid integer (got '1')"),
    "drop_late_string": ({"slices[1].drop_late": "false"}, "slices[1].drop_late: Input should be a valid boolean"),
    "slice_aware_string": ({"policy.params": {"slice_aware": "false"}}, "policy.params.slice_aware: Input should be a valid boolean"),
    "period_tti_float": ({"policy.params": {"period_tti": 2.5}}, "policy.params.period_tti: Input should be a valid integer"),
    "policy_param_unknown": ({"policy.params": {"speed": 1}}, "policy.params.speed: unknown parameter"),
    "builtin_phy_params": ({"phy.params": {"x": 1}}, "phy.params.x: unknown parameter (known: none)"),
    "ns3_timeout_negative": ({"phy.backend": "ns3-shm", "cell.prbs_per_ru": 6, "phy.params": {"timeout_s": -1.0}},
                             "phy.params.timeout_s: timeout_s must be a number > 0"),
    "ns3_timeout_nan": ({"phy.backend": "ns3-shm", "phy.params": {"timeout_s": float("nan")}},
                        "phy.params.timeout_s: Input should be a finite number"),
    "esa_level_nan": ({"policy": {"name": "esa", "params": {"level_factors": [float("nan")]}}},
                      "policy.params.level_factors: level_factors must be positive, finite"),
    "optimal_time_limit_inf": ({"policy": {"name": "optimal", "params": {"time_limit_s": float("inf")}}},
                               "policy.params.time_limit_s: Input should be a finite number"),
    "name_absolute": ({"name": "/abs/path"}, "name: '/abs/path' cannot name a folder"),
    "name_parent": ({"name": "../x"}, "name: '../x' cannot name a folder"),
    "name_hidden": ({"name": ".x"}, "name: '.x' cannot name a folder"),
    "buffer_below_packet": ({"slices[0].buffer_limit_kbytes": 1.0}, "(slices[0].traffic.packet_bytes 1500)"),
    "duplicate_key": ("seed: 1\nduration_s: 0.02\nseed: 2\n", "line 3, column 1: duplicate key 'seed' (first at line 1)"),
    "duplicate_nested_key": ("cell: {prbs_per_ru: 6, prbs_per_ru: 12}\n", "duplicate key 'prbs_per_ru'"),
    "yes_is_not_bool": ("record: {packets: yes}\n", "record.packets: Input should be a valid boolean (got 'yes')"),
    "underscored_number": ("duration_s: 1_0\n", "duration_s: Input should be a valid number (got '1_0')"),
}

for _id, (_change, _expect) in BAD_SCENARIOS.items():
    _text = _change if isinstance(_change, str) else scenario_text(_change)
    for _cmd in ("validate", "run"):
        CASES[f"{_id}[{_cmd}]"] = Case((_cmd, "s.yaml"), 2, _expect, {"s.yaml": _text}, setup=_no_work)


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """Run folders to copy into cases: a normal one, one without packet rows, one of a single TTI."""
    from simcore.run import save_run, simulate
    from simcore.scenario import parse_scenario

    import yaml

    root = tmp_path_factory.mktemp("templates")
    base = yaml.safe_load(scenario_text())
    made = {}
    for key, changes in (("run", {}), ("np", {"record": {"packets": False, "tti": True}}),
                         ("one", {"duration_s": 0.001})):
        made[key] = save_run(simulate(parse_scenario({**base, **changes})), root / key)
    return made


def _materialise(tmp: Path, files: dict, templates: dict) -> None:
    for rel, content in files.items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if content is RUN or (isinstance(content, str) and content.startswith("@")):
            shutil.copytree(templates["run" if content is RUN else content[1:]], p, dirs_exist_ok=True)
        elif content is DIR:
            p.mkdir()
        elif isinstance(content, tuple):
            op = content[0]
            if op == "symlink":
                p.symlink_to(content[1])
            elif op == "truncate":
                p.write_bytes(p.read_bytes()[: content[1]])
            elif op == "copy":
                shutil.copyfile(tmp / content[1], p)
            elif op == "delete":
                p.unlink()
            elif op == "edit":
                data = json.loads(p.read_text())
                for path, value in content[1].items():
                    set_path(data, path, value)
                p.write_text(json.dumps(data))
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_fault(case_id, tmp_path, monkeypatch, capsys, templates):
    case = CASES[case_id]
    work = tmp_path / "work"
    work.mkdir()
    _materialise(work, case.files, templates)
    monkeypatch.chdir(work)
    if case.setup is not None:
        case.setup(work, monkeypatch)
    before = snapshot(work)

    res = invoke(capsys, *case.args)

    if case.lines:
        assert_clean_failure(res, case.code, case.expect, case.lines)
    else:
        assert res.code == case.code and not res.err.strip(), (res.code, res.err)
    after = snapshot(work)
    lost = [p for p, h in before.items() if after.get(p) != h and not any(p == r or p.startswith(r + "/")
                                                                          for r in case.replaced)]
    assert not lost, f"files lost or changed: {lost}"
    assert not temporaries(work), temporaries(work)
    if case.check is not None:
        case.check(work)


def test_yaml_numbers_as_written(tmp_path):
    """YAML 1.2 numbers: 1e3 is a float and 010 is ten (PyYAML's YAML 1.1 gave a string and 8)."""
    from simcore.scenario import load_scenario

    f = tmp_path / "s.yaml"
    f.write_text(scenario_text() + "scheduling: {interval_tti: 010}\n")
    f.write_text(f.read_text().replace("rate_mbps: 1.0", "rate_mbps: 1e0").replace("max_delay_ms: 5.0",
                                                                                  "max_delay_ms: 5E+0"))
    scn = load_scenario(f)
    assert scn.scheduling.interval_tti == 10
    assert scn.slices[0].traffic.rate_mbps == 1.0 and scn.slices[1].max_delay_ms == 5.0


def test_run_folder_and_outputs_follow_the_umask(tmp_path, monkeypatch, capsys):
    (tmp_path / "s.yaml").write_text(S)
    monkeypatch.chdir(tmp_path)
    old = __import__("os").umask(0o027)
    try:
        assert invoke(capsys, "run", "s.yaml", "--out", "r").code == 0
        assert invoke(capsys, "report", "r").code == 0
    finally:
        __import__("os").umask(old)
    assert stat.S_IMODE((tmp_path / "r").stat().st_mode) == 0o750
    for f in (tmp_path / "r").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o640, f
