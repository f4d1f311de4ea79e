#!/usr/bin/env bash
# Print the path of a Python 3.12 interpreter: $PYTHON, python3.12 on PATH, or pyenv's 3.12.
set -euo pipefail
candidates=()
[ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
candidates+=(python3.12)
if command -v pyenv >/dev/null 2>&1; then
  for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.|$)' | sort -V -r); do
    candidates+=("$(pyenv root)/versions/$v/bin/python3.12")
  done
fi
for c in "${candidates[@]}"; do
  if out=$("$c" -c 'import sys; print(sys.executable) if sys.version_info[:2] == (3, 12) else sys.exit(1)' 2>/dev/null); then
    echo "$out"
    exit 0
  fi
done
echo "error: Python 3.12 not found (LeRobot 0.6 needs it). Install it, or set PYTHON=/path/to/python3.12." >&2
exit 1
