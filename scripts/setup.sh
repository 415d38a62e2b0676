#!/usr/bin/env bash
# Sets up everything Forecourt needs on Debian 12 (root, Python 3.11): Debian packages,
# a virtualenv in .venv with the pinned Python packages, and the project itself.
# Safe to run again: each step checks first and only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  mosquitto mosquitto-clients           # the MQTT broker the demo and tests start on loopback
  fonts-wqy-microhei                    # CJK font: Chinese UI text and receipts render, not boxes
  libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0
  libxcb-render-util0 libxcb-image0   # Qt's xcb platform plugin when a display exists
  xvfb                                  # a virtual display for screenshots
  socat                                 # PTY pairs for pump-bus tests
  poppler-utils                         # pdftoppm: report PDFs are rendered and looked at in tests
  systemd-container iproute2            # systemd-nspawn (+ ss): the .deb's upgrade test boots a real systemd
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating virtualenv .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.forecourt-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing Python packages (pinned in pyproject.toml)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi
echo "[setup] ok"
