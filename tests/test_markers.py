"""``make test-fast`` starts no learner: conftest fails a test not marked slow/e2e that starts one."""

import sys
from pathlib import Path

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")
#: A test file whose tests run a trivial process with a learner's name on its command line.
SPAWNING = f"""
import subprocess
import pytest

ARGV = [{sys.executable!r}, "-c", "pass", "e2hil-learner"]

def test_unmarked():
    subprocess.run(ARGV, check=True)

@pytest.mark.slow
def test_slow():
    subprocess.run(ARGV, check=True)

@pytest.mark.e2e
def test_e2e():
    subprocess.run(ARGV, check=True)

def test_other_process():
    subprocess.run([{sys.executable!r}, "-c", "pass"], check=True)
"""


def test_a_test_that_starts_a_learner_must_be_marked_slow_or_e2e(pytester):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n    e2e: e2e\n")
    pytester.makepyfile(test_spawning=SPAWNING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_unmarked starts 'e2hil-learner': mark it @pytest.mark.slow*"])


#: A stand-in for the conftest's shared launcher run: it writes its pid.
STAND_IN = """

@pytest.fixture(scope="session")
def short_sim_run():
    with open(os.environ["RUNS_FILE"], "a") as runs:
        runs.write(f"{os.getpid()}\\n")
"""
#: Tests that read the shared run, and others; written in two files.
SHARING = """
import pytest

@pytest.mark.parametrize("k", range(4))
def test_reads_the_run(short_sim_run, k):
    pass

@pytest.mark.parametrize("k", range(4))
def test_other(k):
    pass
"""


def test_a_shared_run_is_made_once_under_two_xdist_workers(pytester, monkeypatch, tmp_path):
    """``make test`` (``-n 2 --dist loadgroup``) keeps the tests of one shared run on one worker."""
    runs = tmp_path / "runs.txt"
    monkeypatch.setenv("RUNS_FILE", str(runs))
    pytester.makeconftest(CONFTEST.read_text() + STAND_IN)
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n    e2e: e2e\n")
    pytester.makepyfile(test_one=SHARING, test_two=SHARING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup")
    result.assert_outcomes(passed=16)
    assert len(runs.read_text().split()) == 1, runs.read_text()
