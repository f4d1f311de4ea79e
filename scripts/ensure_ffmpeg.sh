#!/usr/bin/env bash
# torchcodec (LeRobot's video decoder) loads FFmpeg's shared libraries (libavutil 56-60, i.e.
# FFmpeg 4-8); without them every LeRobot command prints a long traceback before falling back to
# pyav. Install Debian's/Ubuntu's FFmpeg (its libraries and the CLI) when no supported libavutil is found.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -Eq 'libavutil\.so\.(56|57|58|59|60) '; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "FFmpeg's shared libraries (4 to 8) are missing: install them with your package manager" >&2
  exit 1
fi
echo "Installing FFmpeg's shared libraries for torchcodec"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends ffmpeg
