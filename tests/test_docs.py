"""The repository explains itself: no file points users at notes they do not have, and every
relative link of the README and docs/ leads to a file that exists."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Folders that are not the project's own files (a checkout without git is walked instead).
SKIP_DIRS = {".git", ".venv", "runs", "build", "dist", "__pycache__", ".pytest_cache", ".hypothesis"}
#: The development team's private notes, spelled so that this file does not match itself.
PRIVATE = ("DES" "IGN", ".." "/shared")


def project_files() -> list[Path]:
    """The tracked files (git ls-files), or every file outside SKIP_DIRS when this is not a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30).stdout
        names = [n for n in out.decode().split("\0") if n]
        if names:
            return [ROOT / n for n in names if (ROOT / n).is_file()]
    except (OSError, subprocess.SubprocessError):
        pass
    files = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        files.extend(Path(folder) / n for n in names)
    return files


def text_of(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None  # binary (figures, checkpoints)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_no_reference_to_private_notes():
    hits = []
    files = project_files()
    assert any(f.name == "README.md" for f in files)  # the listing found the project
    for f in files:
        text = text_of(f)
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if any(p in line for p in PRIVATE):
                hits.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not hits, "files point at notes users do not have (use docs/architecture.md):\n" + "\n".join(hits)


LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces to '-'."""
    out = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def test_relative_links_resolve():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):
                continue  # a URL
            if target.startswith("#"):
                if target[1:] not in anchors(page):
                    broken.append(f"{page.relative_to(ROOT)}: {target}")
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)
    assert (ROOT / "docs" / "architecture.md").exists()
    assert "docs/architecture.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_annotated_scenario_validates():
    """The annotated scenario of docs/scenarios.md (every section) is a valid scenario as printed."""
    from simcore.scenario import parse_scenario
    from simcore.yamlio import load_yaml_text

    text = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
    start = text.index("```yaml", text.index("An annotated scenario")) + len("```yaml")
    scenario = parse_scenario(load_yaml_text(text[start:text.index("```", start)]))
    assert scenario.name == "quick" and scenario.quantizer_bits >= 1


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test\b", readme, re.M), "the README gives its test command as `make test`"
    assert re.search(r"^make test\s*$", ci, re.M), ".ci/run must run the README's test command"
