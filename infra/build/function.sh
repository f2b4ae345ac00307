#!/usr/bin/env bash
# `sam build`'s makefile step for one function: `make build-<LogicalId>` runs this with
# SAM's ARTIFACTS_DIR. One bootstrap serves every function (functions/lambda: it serves the
# function its Handler names), built once for Lambda's arm64; each function takes a copy.
# The first function to get here builds, under a lock; the others wait for it and find
# the build fresh. `make package` does the same build up front, then runs `sam build`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
logical_id=${1:?usage: function.sh LogicalId ARTIFACTS_DIR}
artifacts=${2:?usage: function.sh LogicalId ARTIFACTS_DIR}

# The function must be one template.yaml declares (a typo should not build a package).
if ! grep -qx "  $logical_id:" "$root/template.yaml"; then
  echo "function.sh: template.yaml declares no $logical_id" >&2
  exit 1
fi

bash "$root/infra/build/workspace.sh"
target=${CARGO_TARGET_DIR:-$root/target}
built="$target/lambda/bootstrap/bootstrap"
if [ ! -x "$built" ]; then
  echo "function.sh: $built is missing after the build" >&2
  exit 1
fi
mkdir -p "$artifacts"
# A hard link where it can (ninety copies of one 29 MB file otherwise), a copy where not.
rm -f "$artifacts/bootstrap"
ln "$built" "$artifacts/bootstrap" 2>/dev/null || cp "$built" "$artifacts/bootstrap"
