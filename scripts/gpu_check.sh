#!/usr/bin/env bash
# GPU check, for the day a CUDA machine is lent (CI never runs it). Prints figures:
#   1. the update-cost benchmark (E2HiL vs SAC, ms per update, state-only and with images) on the GPU;
#   2. a short state-only sim run (learner + actor + scripted teacher) with --policy.device=cuda;
#   3. a short camera sim run (two 128x128 cameras) with --policy.device=cuda.
# Usage: bash scripts/gpu_check.sh            (after make install; about 10 minutes on one GPU)
# Knobs: DEVICE (cuda), STATE_STEPS (1500), CAMERA_STEPS (300), ROUNDS (3); DEVICE=cpu smoke-checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cuda}
STATE_STEPS=${STATE_STEPS:-1500}
CAMERA_STEPS=${CAMERA_STEPS:-300}
ROUNDS=${ROUNDS:-3}
export MUJOCO_GL=${MUJOCO_GL:-egl} HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

if [ "$DEVICE" = "cuda" ]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA device visible to torch')"
  "$PY" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda)"
fi
out=$(mktemp -d)
echo "== 1. update cost on $DEVICE (benchmarks/bench_update.py)"
"$PY" benchmarks/bench_update.py --device "$DEVICE" --rounds "$ROUNDS"

echo "== 2. state-only sim run, $STATE_STEPS env steps, --policy.device=$DEVICE"
start=$(date +%s)
"$PY" -m lerobot_policy_e2hil.launcher.train --config_path HIL-SERL/train_gym_hil_env_SIM.json \
  --policy.device="$DEVICE" --policy.online_steps="$STATE_STEPS" --output_dir="$out/state"
echo "state-only run: $(( $(date +%s) - start )) s wall for $STATE_STEPS env steps"

echo "== 3. camera sim run, $CAMERA_STEPS env steps, --policy.device=$DEVICE"
start=$(date +%s)
"$PY" -m lerobot_policy_e2hil.launcher.train --config_path HIL-SERL/train_gym_hil_env_SIM_cameras.json \
  --policy.device="$DEVICE" --policy.online_steps="$CAMERA_STEPS" --output_dir="$out/cameras"
echo "camera run: $(( $(date +%s) - start )) s wall for $CAMERA_STEPS env steps"
echo "runs in $out"
