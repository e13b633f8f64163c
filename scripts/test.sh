#!/usr/bin/env bash
# The one test command (README "Development"): installs what the tests need, then lints, type-checks and tests.
# On a fresh Debian 12 machine run it as root (or with sudo available) so it can apt-get the real registry.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(docker-registry skopeo git python3-venv umoci runc busybox-static docker.io chromium chromium-driver openssl)
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
# poetry pins its own dependencies, so it gets a venv of its own (tests/integration/test_index_poetry.py).
if [ ! -x .venv-poetry/bin/poetry ]; then
  "$python" -m venv .venv-poetry
  .venv-poetry/bin/python -m pip install -q "poetry>=2"
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
