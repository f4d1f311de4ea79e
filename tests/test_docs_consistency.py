"""The docs say what the code does: logged metrics, cited files, the layout table, quoted config values."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "lerobot_policy_e2hil"


def test_every_logged_e2hil_key_is_in_docs_metrics():
    logged = {m for path in PACKAGE.rglob("*.py") for m in re.findall(r"\"(e2hil/\w+)\"", path.read_text())}
    assert len(logged) >= 9
    documented = (ROOT / "docs" / "metrics.md").read_text()
    assert sorted(k for k in logged if f"`{k}`" not in documented) == []


def test_docs_cited_in_the_source_exist():
    cited = {
        (path.relative_to(ROOT), doc)
        for path in PACKAGE.rglob("*.py")
        for doc in re.findall(r"\bdocs/[\w/]+\.md\b", path.read_text())
    }
    assert cited
    assert sorted((str(p), d) for p, d in cited if not (ROOT / d).is_file()) == []


def test_readme_layout_lists_every_top_level_folder_and_subpackage():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    rows = set(re.findall(r"^\| `([^`]+)` \|", layout, flags=re.M))
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    folders = {f"{line.split('/')[0]}/" for line in tracked.stdout.splitlines() if "/" in line}
    subpackages = {f"src/lerobot_policy_e2hil/{p.parent.name}/" for p in PACKAGE.glob("*/__init__.py")}
    missing = sorted(f for f in folders | subpackages if f not in rows and f != "src/")
    assert missing == []


def _save_freq(name: str) -> int:
    return json.loads((ROOT / "HIL-SERL" / name).read_text())["save_freq"]


def test_faults_doc_quotes_the_configs_save_freq():
    text = " ".join((ROOT / "docs" / "faults.md").read_text().split())
    sim = re.search(r"the sim JSON \(`save_freq` (\d+)", text)
    so101 = re.search(r"the SO101 JSONs \(`save_freq` (\d+)", text)
    assert sim and int(sim[1]) == _save_freq("train_gym_hil_env_SIM.json")
    assert so101 and int(so101[1]) == _save_freq("train_config_e2hil_so101.json")
    assert _save_freq("train_config_hilserl_so101.json") == int(so101[1])
