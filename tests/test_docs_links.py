"""The user docs link to what exists, and the README's opening holds no history.

Every relative link of README*.md, CHANGELOG.md and docs/ (history included) resolves to a file or
folder of the repository, and a ``#anchor`` to a heading of the linked page (GitHub's anchors).
README's text before its set-up section is short and carries no dates, commit hashes or issue
numbers, and links every guide; the guides in docs/ carry none of them either (they live in
CHANGELOG.md and docs/history/).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
GUIDES = (
    "docs/sim.md",
    "docs/configuration.md",
    "README_HIL_SERL.md",
    "docs/troubleshooting.md",
    "docs/algorithm.md",
    "docs/metrics.md",
    "docs/benchmarks.md",
)
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
COMMIT = re.compile(r"`[0-9a-f]{7,40}`")
OUR_ISSUE = re.compile(r"\bissues? #\d+|\(#\d+\)|this project's issue")


def markdown_files() -> list[Path]:
    files = [*ROOT.glob("README*.md"), ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md")]
    return sorted(p for p in files if p.is_file())


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{path.relative_to(root)}: {target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{path.relative_to(root)}: {target} (no such heading)")
    return broken


def test_slug_matches_github():
    assert slug("Runtime and faults (`--faults.*`)") == "runtime-and-faults---faults"
    assert slug("The paper's regime: two cube positions, a human-like teacher") == (
        "the-papers-regime-two-cube-positions-a-human-like-teacher"
    )


def test_every_relative_link_resolves():
    files = markdown_files()
    assert ROOT / "README.md" in files and ROOT / "docs" / "troubleshooting.md" in files
    assert [b for path in files for b in broken_links(path)] == []


def test_a_broken_link_is_reported(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](missing.md) [bad anchor](#nowhere)\n")
    assert [b.split(": ", 1)[1] for b in broken_links(page, tmp_path)] == [
        "missing.md (no such file)",
        "#nowhere (no such heading)",
    ]


def test_readme_opening_is_short_links_the_guides_and_holds_no_history():
    readme = (ROOT / "README.md").read_text()
    opening = readme[: readme.index("## Set-up")]
    assert len(opening.splitlines()) < 60
    assert readme.startswith("# LeRobot E2HiL\n\n```bash\nmake sim ")
    for pattern in (DATE, COMMIT, OUR_ISSUE, re.compile(r"\bissues? \d+")):
        assert pattern.findall(opening) == [], pattern.pattern
    linked = set(LINK.findall(opening))
    assert [g for g in GUIDES if g not in linked] == []
    assert "CHANGELOG.md" in linked and (ROOT / "CHANGELOG.md").is_file()
    assert "<!-- benchmark-answer -->" in opening and "<!-- /benchmark-answer -->" in opening


def test_the_guides_hold_no_dates_hashes_or_issue_numbers():
    found = []
    for guide in (
        "README.md",
        *GUIDES[:2],
        *GUIDES[3:],
        "docs/faults.md",
        "docs/patches.md",
        "docs/layout.md",
    ):
        text = (ROOT / guide).read_text()
        found += [f"{guide}: {m}" for pattern in (DATE, COMMIT, OUR_ISSUE) for m in pattern.findall(text)]
    assert found == []
