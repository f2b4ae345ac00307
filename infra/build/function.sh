#!/usr/bin/env bash
# `sam build`'s makefile step for one function: `make build-<LogicalId>` runs this with
# SAM's ARTIFACTS_DIR. The workspace is built once for Lambda's arm64 (cargo lambda, every
# binary in one cargo run); each function then only takes its binary as `bootstrap`. The
# first function to get here builds, under a lock; the others wait for it and find the
# build fresh. `make package` does the same build up front, then runs `sam build`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
logical_id=${1:?usage: function.sh LogicalId ARTIFACTS_DIR}
artifacts=${2:?usage: function.sh LogicalId ARTIFACTS_DIR}

# The function's binary, as template.yaml names it under Metadata.BuildProperties.Binary.
binary=$(awk -v id="  $logical_id:" '
  $0 == id { inside = 1; next }
  inside && /^  [A-Za-z]/ { exit }
  inside && $1 == "Binary:" { print $2; exit }' "$root/template.yaml")
if [ -z "$binary" ]; then
  echo "function.sh: template.yaml has no Binary for $logical_id" >&2
  exit 1
fi

bash "$root/infra/build/workspace.sh"
target=${CARGO_TARGET_DIR:-$root/target}
built="$target/lambda/$binary/bootstrap"
if [ ! -x "$built" ]; then
  echo "function.sh: $built is missing after the build" >&2
  exit 1
fi
mkdir -p "$artifacts"
cp "$built" "$artifacts/bootstrap"
