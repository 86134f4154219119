#!/usr/bin/env bash
# System packages: libraries for headless MuJoCo rendering (MUJOCO_GL=egl with Mesa's software renderer),
# and python3-venv where Python lacks venv's pip bootstrap.
# Installs them with apt-get when they are missing and we may; otherwise says what to install.
set -euo pipefail
packages=(libegl1 libegl-mesa0 libgl1-mesa-dri)
missing=()
# Debian and Ubuntu ship venv's pip bootstrap separately.
if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
  packages+=(python3-venv)
fi
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ] || ! command -v dpkg >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} for headless rendering"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "warning: headless rendering needs: sudo apt-get install ${missing[*]}" >&2
fi
