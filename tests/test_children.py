"""``launcher.children``: how a run's processes start and stop, on short real child processes.

Also the rule that keeps it the one way to start them: no other module of the package or the
benchmarks calls ``subprocess.Popen``.
"""

from __future__ import annotations

import ast
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lerobot_policy_e2hil.launcher.children import KILL, Children, Escalation

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

#: A child that notes each signal in its log, then sleeps; its handlers decide how it ends.
NOTING = textwrap.dedent(
    """
    import signal, sys, time

    def note(name, code):
        def handler(signum, frame):
            print(name, flush=True)
            if code is not None:
                sys.exit(code)
        return handler

    for spec in sys.argv[1:]:
        name, _, code = spec.partition("=")
        signal.signal(getattr(signal, name), note(name, int(code) if code else None))
    print("ready", flush=True)
    time.sleep(60)
    """
)


def noting(*handlers: str) -> list[str]:
    """A child that prints ``ready``; ``"SIGINT=3"``: on SIGINT print its name, exit 3; ``"SIGINT"``: print only."""
    return [PYTHON, "-c", NOTING, *handlers]


def wait_ready(log: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while "ready" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)


def test_output_goes_to_the_log_stdin_is_closed_and_the_env_and_cwd_apply(tmp_path):
    children = Children(env={**os.environ, "CHILD_SAYS": "hello"}, cwd=tmp_path)
    code = "import os, sys; print(os.environ['CHILD_SAYS'], os.getcwd(), repr(sys.stdin.read())); sys.exit(4)"
    child = children.start("one", [PYTHON, "-c", code], tmp_path / "one.out")
    assert child.wait(timeout=30) == 4
    assert (tmp_path / "one.out").read_text() == f"hello {tmp_path} ''\n"
    assert children["one"].log == tmp_path / "one.out" and child.offset == 0
    assert child.args == [PYTHON, "-c", code]


def test_truncate_append_the_command_line_and_stderr_apart(tmp_path):
    log = tmp_path / "a.log"
    log.write_text("earlier run\n")
    children = Children()
    say = [PYTHON, "-c", "import sys; print('out'); print('err', file=sys.stderr)"]
    child = children.start("a", say, log, append=True)
    assert child.wait(timeout=30) == 0
    assert child.offset == len("earlier run\n")
    assert log.read_text().startswith("earlier run\n")
    # both streams, in either order
    assert sorted(log.read_text()[child.offset :].splitlines()) == ["err", "out"]
    child = children.start("a", say, log, echo_command=True, stderr_log=tmp_path / "a.err")
    assert child.wait(timeout=30) == 0
    assert log.read_text() == "$ " + " ".join(say) + "\nout\n"
    assert child.offset == len("$ " + " ".join(say) + "\n")
    assert (tmp_path / "a.err").read_text() == "err\n"


def test_a_name_still_running_cannot_start_again(tmp_path):
    children = Children()
    children.start("x", noting(), tmp_path / "x.out")
    try:
        with pytest.raises(ValueError, match="name='x' is invalid"):
            children.start("x", noting(), tmp_path / "x2.out")
    finally:
        assert children.stop_all(KILL) == {"x": -signal.SIGKILL}


def test_a_child_that_ends_on_sigint_gets_one_signal_and_its_exit_code(tmp_path):
    children = Children()
    child = children.start("c", noting("SIGINT=3"), tmp_path / "c.out")
    wait_ready(child.log)
    late: list = []
    begin = time.monotonic()
    codes = children.stop(["c"], Escalation.then_kill(signal.SIGINT, 20), lambda *a: late.append(a))
    assert codes == {"c": 3} and not late
    assert time.monotonic() - begin < 10
    assert child.log.read_text().splitlines() == ["ready", "SIGINT"]


def test_the_launchers_stop_one_sigint_to_all_one_shared_timeout_then_sigkill(tmp_path, capsys):
    """As ``e2hil-sim`` stops its actors: both ignore SIGINT, so both are killed after ONE timeout."""
    from lerobot_policy_e2hil.launcher.train import _say_killing, _stop_escalation

    children = Children(new_session=True)
    pids = [children.start(name, noting("SIGINT"), tmp_path / f"{name}.out").pid for name in ("a", "b")]
    for name in ("a", "b"):
        wait_ready(tmp_path / f"{name}.out")
    capsys.readouterr()
    begin = time.monotonic()
    codes = children.stop(["a", "b"], _stop_escalation(1.0), _say_killing)
    took = time.monotonic() - begin
    assert codes == {"a": -signal.SIGKILL, "b": -signal.SIGKILL}
    assert 1.0 <= took < 2.0  # one timeout shared by both, not one each
    assert capsys.readouterr().out.splitlines() == [
        f"[e2hil-sim] pid {pid} did not stop within 1 s; killing it" for pid in pids
    ]
    for name in ("a", "b"):
        assert (tmp_path / f"{name}.out").read_text().splitlines() == ["ready", "SIGINT"]


def test_each_callers_escalation_is_declared():
    """The launcher: SIGINT, its stop timeout, SIGKILL. The dry run: SIGINT, grace, SIGTERM 5 s, SIGKILL 5 s."""
    from lerobot_policy_e2hil.launcher.children import KILL_WAIT_S
    from lerobot_policy_e2hil.launcher.train import _stop_escalation as launcher_stop
    from lerobot_policy_e2hil.so101.dry_run import _stop_escalation as dry_run_stop

    assert launcher_stop(60.0).steps == ((signal.SIGINT, 60.0), (signal.SIGKILL, KILL_WAIT_S))
    assert dry_run_stop(240.0).steps == ((signal.SIGINT, 240.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))
    assert KILL.steps == ((signal.SIGKILL, KILL_WAIT_S),)


def test_the_dry_runs_stop_sigint_grace_then_sigterm(tmp_path):
    """As the SO101 dry run stops a stage: SIGINT ignored, so SIGTERM after the grace; its exit code."""
    from lerobot_policy_e2hil.so101.dry_run import _stop_escalation

    children = Children()
    child = children.start("stage", noting("SIGINT", "SIGTERM=5"), tmp_path / "stage.log")
    wait_ready(child.log)
    begin = time.monotonic()
    assert children.stop(["stage"], _stop_escalation(0.5)) == {"stage": 5}
    assert 0.5 <= time.monotonic() - begin < 3
    assert child.log.read_text().splitlines() == ["ready", "SIGINT", "SIGTERM"]


def test_a_stopped_child_that_cannot_handle_signals_is_killed_within_the_waits(tmp_path):
    """SIGSTOPped (as a frozen actor is in the fault tests): SIGINT and SIGTERM wait, SIGKILL ends it."""
    children = Children()
    child = children.start("frozen", noting("SIGINT=3", "SIGTERM=5"), tmp_path / "f.out")
    wait_ready(child.log)
    child.send_signal(signal.SIGSTOP)
    how = Escalation(((signal.SIGINT, 0.3), (signal.SIGTERM, 0.3), (signal.SIGKILL, 5.0)))
    begin = time.monotonic()
    assert children.stop(["frozen"], how) == {"frozen": -signal.SIGKILL}
    assert time.monotonic() - begin < 3


def test_stop_all_goes_newest_first_one_after_the_other(tmp_path):
    order = tmp_path / "order"
    code = textwrap.dedent(
        """
        import signal, sys, time
        def handler(signum, frame):
            with open(sys.argv[1], "a") as f:
                f.write(sys.argv[2] + "\\n")
            sys.exit(0)
        signal.signal(signal.SIGINT, handler)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    children = Children()
    for name in ("learner", "actor", "eval"):
        wait_ready(children.start(name, [PYTHON, "-c", code, str(order), name], tmp_path / f"{name}.log").log)
    assert children.stop_all(Escalation.then_kill(signal.SIGINT, 10)) == {"eval": 0, "actor": 0, "learner": 0}
    assert order.read_text().splitlines() == ["eval", "actor", "learner"]
    assert children.running() == []


def test_stopping_an_ended_child_sends_nothing_and_gives_its_code(tmp_path):
    children = Children()
    child = children.start("done", [PYTHON, "-c", "raise SystemExit(7)"], tmp_path / "d.out")
    child.wait(timeout=30)
    assert children.stop(["done"], KILL) == {"done": 7}


@pytest.mark.parametrize("die_with_parent", [True, False])
def test_parent_death_signal_and_session(tmp_path, die_with_parent):
    read = (
        "import ctypes, os; v = ctypes.c_int(-1); ctypes.CDLL(None).prctl(2, ctypes.byref(v)); "
        "print(v.value, os.getsid(0) == os.getpid())"
    )
    children = Children(new_session=die_with_parent, die_with_parent=die_with_parent)
    child = children.start("p", [PYTHON, "-c", read], tmp_path / "p.out")
    assert child.wait(timeout=30) == 0
    expected = f"{int(signal.SIGTERM) if die_with_parent else 0} {die_with_parent}"
    assert child.log.read_text().split("\n")[0] == expected


@pytest.mark.slow  # the starter imports the package (torch, LeRobot)
def test_a_child_gets_sigterm_when_its_starter_is_sigkilled(tmp_path):
    starter_code = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from lerobot_policy_e2hil.launcher.children import Children

        child = Children(new_session=True).start("c", sys.argv[1:], Path(sys.argv[0]).parent / "c.out")
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    starter_file = tmp_path / "starter.py"
    starter_file.write_text(starter_code)
    starter = subprocess.Popen(
        [PYTHON, str(starter_file), *noting("SIGTERM=6")], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    pid = None
    try:
        pid = int(starter.stdout.readline())
        wait_ready(tmp_path / "c.out")
        starter.kill()
        starter.wait(timeout=30)
        deadline = time.monotonic() + 30
        while "SIGTERM" not in (tmp_path / "c.out").read_text():
            assert time.monotonic() < deadline, "the child got no SIGTERM"
            time.sleep(0.05)
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait(timeout=30)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_escalation_ends_with_sigkill_and_waits_are_finite():
    with pytest.raises(ValueError, match="ending with SIGKILL"):
        Escalation(((signal.SIGINT, 1.0),))
    with pytest.raises(ValueError, match="ending with SIGKILL"):
        Escalation(())
    with pytest.raises(ValueError, match="allowed values: >= 0 s"):
        Escalation(((signal.SIGINT, float("inf")), (signal.SIGKILL, 1.0)))
    with pytest.raises(ValueError, match="allowed values: >= 0 s"):
        Escalation.then_kill(signal.SIGINT, -1.0)


#: Modules that may call ``subprocess.Popen`` besides ``launcher/children.py``, with the reason.
POPEN_ALLOWED = {
    "benchmarks/sim_runs.py": "runs whole `e2hil-sim` commands (each a launcher that starts its own pair "
    "through launcher/children.py), several seeds at once, as a user types them",
}
CHILDREN_MODULE = "src/lerobot_policy_e2hil/launcher/children.py"


def _process_starts(tree: ast.AST) -> list[int]:
    """Lines that call ``subprocess.Popen``, ``Popen`` imported from subprocess, ``os.fork``/``os.spawn*``/``os.posix_spawn*``."""
    names = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "subprocess"
        for alias in node.names
        if alias.name == "Popen"
    }
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner, attr = func.value.id, func.attr
            if (owner, attr) == ("subprocess", "Popen") or (
                owner == "os" and (attr == "fork" or attr.startswith(("spawn", "posix_spawn")))
            ):
                lines.append(node.lineno)
        elif isinstance(func, ast.Name) and func.id in names:
            lines.append(node.lineno)
    return lines


def test_the_scan_finds_popen_in_each_form():
    source = "import subprocess, os\nfrom subprocess import Popen as P\nsubprocess.Popen(['a'])\nP(['b'])\nos.fork()\n"
    assert _process_starts(ast.parse(source)) == [3, 4, 5]


def test_only_the_children_module_starts_processes():
    """A second learner/actor spawner in the package or the benchmarks fails here: start it with ``Children``."""
    found = {}
    for path in sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        lines = _process_starts(ast.parse(path.read_text(), filename=relative))
        if lines and relative != CHILDREN_MODULE and relative not in POPEN_ALLOWED:
            found[relative] = lines
    assert not found, f"processes started outside {CHILDREN_MODULE} (use launcher.children.Children): {found}"
    assert _process_starts(ast.parse((ROOT / CHILDREN_MODULE).read_text()))
    for allowed in POPEN_ALLOWED:
        assert _process_starts(ast.parse((ROOT / allowed).read_text())), (
            f"{allowed} no longer needs its exception"
        )
