#!/usr/bin/env bash
# Cold start of each Lambda function: its binary size (release, this machine's
# architecture, and the arm64 bootstrap from scripts/sam-build.sh if built) and its init
# time (process start to the pipeline ready: secrets read, clients built, owners
# matched), against moto's server and the CRM sandboxes on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
cargo build --release --workspace --bins --locked
.venv/bin/python scripts/cold_start.py
