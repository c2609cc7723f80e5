#!/usr/bin/env bash
# Runs the main job: vmctld --dev, the controller inside its simulated world.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --workspace --bins
exec target/debug/vmctld --dev "$@"
