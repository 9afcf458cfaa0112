#!/usr/bin/env bash
# Builds the three Lambda functions the way a deploy does: `sam build` with the
# cargo-lambda builder (a SAM beta feature), cross-compiled for the template's
# architecture (arm64 by default; ARCH=x86_64 for the other). Prints the time taken
# and each function's bootstrap size. Needs rustup; installs aws-sam-cli into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
if [ ! -x .venv/bin/sam ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==1.170.0
fi
arch=${ARCH:-arm64}
if [ "$arch" = arm64 ]; then
  rustup target add aarch64-unknown-linux-gnu >/dev/null
fi
export PATH="$PWD/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0
start=$(date +%s)
sam build --beta-features --template-file infra/template.yaml --build-dir .aws-sam/build \
  --parameter-overrides "Architecture=$arch"
echo "sam build ($arch): $(( $(date +%s) - start )) s"
for f in PollerFunction IntakeFunction WorkerFunction; do
  printf '%-16s %s bytes\n' "$f" "$(stat -c %s ".aws-sam/build/$f/bootstrap")"
done
