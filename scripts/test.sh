#!/usr/bin/env bash
# The test command: Rust unit, property and integration tests, then the Python-side
# tests that drive the sandbox binary with HubSpot's own client and validate its
# answers against HubSpot's OpenAPI specs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
cargo test --workspace --locked
# The Python tests start the sandbox binary that `cargo test` just built.
.venv/bin/python -m pytest -q tests/python
