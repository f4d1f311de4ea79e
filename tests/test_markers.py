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
