#!/usr/bin/env bash
# Builds the one bootstrap every Lambda function runs (functions/lambda) for arm64
# (provided.al2023): `cargo lambda build --release --arm64` cross-compiles with zig. Once
# per change: a stamp
# records the build, and a build finding no source newer than the stamp does nothing. A lock
# makes concurrent callers (sam build's parallel functions) wait for the one building.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d /var/tmp/autocrew-target ]; then
  export CARGO_TARGET_DIR=/var/tmp/autocrew-target
fi
target=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$target/lambda"
stamp="$target/lambda/.workspace-built"
tools="$root/.local/sam-venv/bin"
[ -d "$tools" ] && export PATH="$tools:$PATH"

exec 9>"$target/lambda/.build.lock"
flock 9
if [ -f "$stamp" ] && [ -z "$(find Cargo.toml Cargo.lock shared functions migrations -newer "$stamp" -type f -print -quit)" ]; then
  exit 0
fi
if ! command -v cargo-lambda >/dev/null; then
  echo "workspace.sh: cargo-lambda is missing: make package installs it (or pip install cargo-lambda ziglang)" >&2
  exit 1
fi
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu || {
    echo "workspace.sh: could not install the aarch64-unknown-linux-gnu target" >&2
    exit 1
  }
fi
started=$(date +%s)
cargo lambda build --release --arm64 -p autocrew-lambda --bin bootstrap
touch "$stamp"
echo "workspace.sh: the bootstrap every function runs, built for arm64 in $(( $(date +%s) - started )) s" >&2
