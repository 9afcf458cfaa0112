#!/usr/bin/env bash
# The test command: installs Debian's chromium if it is missing (the dashboard's browser
# test), starts moto's server (DynamoDB and SQS on loopback), runs the Rust
# unit, property and integration tests, then the Python-side tests that drive the
# sandbox binary with HubSpot's own client and simple-salesforce and validate its
# answers against HubSpot's OpenAPI specs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
# Headless Chromium for the dashboard's browser test: Debian's package, once.
if [ ! -x "${CRMSYNC_CHROMIUM:-/usr/bin/chromium}" ]; then
  sudo_=""
  if [ "$(id -u)" != 0 ]; then sudo_="sudo"; fi
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium >/dev/null
fi

mkdir -p target
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$port" > target/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
export CRMSYNC_MOTO_URL="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  if .venv/bin/python -c "import urllib.request; urllib.request.urlopen('$CRMSYNC_MOTO_URL/moto-api/')" 2>/dev/null; then
    break
  fi
  sleep 0.1
done

cargo test --workspace --locked
# The Python tests start the sandbox binary that `cargo test` just built.
.venv/bin/python -m pytest -q tests/python
