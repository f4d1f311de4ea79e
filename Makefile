# Set-up, tests and the simulated default run. Every target installs what it needs first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: install mesa ffmpeg test test-fast lint format sim bench clean

# The README's set-up: .venv, Mesa (headless MuJoCo) and FFmpeg's shared libraries (torchcodec).
install: $(STAMP) mesa ffmpeg

$(STAMP): pyproject.toml
	test -x $(PY) || "$$(bash scripts/find_python312.sh)" -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

mesa:
	bash scripts/ensure_mesa.sh

# FFmpeg's shared libraries for torchcodec (LeRobot's video decoder)
ffmpeg:
	bash scripts/ensure_ffmpeg.sh

# Two pytest-xdist workers, one per core of the 2-core machine (the suite is CPU-bound); tests that
# read one shared run stay on one worker, the slow ones start first (tests/conftest.py).
test: install
	$(PY) -m pytest -n 2 --dist loadgroup

# The developer loop: everything but the slow and end-to-end tests.
test-fast: install
	$(PY) -m pytest -n 2 --dist loadgroup -m "not slow and not e2e"

lint: install
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

format: install
	$(VENV)/bin/ruff check --fix src tests benchmarks examples
	$(VENV)/bin/ruff format src tests benchmarks examples

# Train E2HiL in the headless gym_hil sim with the scripted teacher (learner + actor over gRPC).
sim: install
	$(PY) -m lerobot_policy_e2hil.launcher.train --config_path HIL-SERL/train_gym_hil_env_SIM.json $(ARGS)

bench: install
	$(PY) benchmarks/bench_update.py $(ARGS)

# E2HiL vs HIL-SERL in the sim, {sac, e2hil} x 5 seeds, report in docs/benchmarks/ (ARGS=--quick=true: smoke check)
.PHONY: bench-suite
bench-suite: install
	$(VENV)/bin/e2hil-bench suite $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
