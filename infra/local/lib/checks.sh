# shellcheck shell=bash
# The test command's parts: formatting and lints, template lint, the test suite, chaos
# rounds, the API fuzz and each benchmark's smoke mode.

# rustfmt and clippy with warnings denied, before anything slow.
static_checks() {
  local t0=$SECONDS
  (cd "$root" && cargo fmt --all --check) || die "cargo fmt --check: run 'cargo fmt --all'"
  (cd "$root" && cargo clippy --workspace --all-targets --quiet -- -D warnings) || die "cargo clippy found warnings"
  say "cargo fmt --check and cargo clippy -D warnings pass ($((SECONDS - t0)) s)"
}

# The TypeScript client a mobile team would generate from openapi.json
# (tests/client/check.ts): types generated, the file type-checked, so a response without a
# full schema, or a field the API does not send, fails here. Then graphql-js, the reference
# implementation, builds docs/schema.graphql and validates the dashboard's query on it
# (tests/client/graphql.ts). run_fuzz_api runs both against a live runner.
client_check() {
  local t0=$SECONDS client="$root/tests/client"
  install_client
  (cd "$client" && node_modules/.bin/openapi-typescript ../../openapi.json -o generated/api.d.ts >/dev/null \
    && rm -rf out && node_modules/.bin/tsc -p .) || die "the TypeScript client generated from openapi.json does not type-check"
  node "$client/out/check.js" || die "graphql-js refuses docs/schema.graphql or the dashboard's query on it"
  say "the TypeScript client generated from openapi.json type-checks; graphql-js takes docs/schema.graphql ($((SECONDS - t0)) s)"
}

lint() {
  install_sam
  (cd "$root" && "$sam_venv/bin/cfn-lint" template.yaml) || die "cfn-lint found problems in template.yaml"
  (cd "$root" && SAM_CLI_TELEMETRY=0 "$sam_venv/bin/sam" validate --lint --region us-east-1 --template-file template.yaml >/dev/null) \
    || die "sam validate --lint found problems in template.yaml"
  say "template.yaml: cfn-lint and sam validate --lint pass"
}

# `sam build` as a deploy needs it: the workspace built once for arm64, then each function's
# makefile step takes its binary into .aws-sam/build. Says how long each part took.
package() {
  install_sam
  local started built
  started=$(date +%s)
  PATH="$sam_venv/bin:$PATH" bash "$root/infra/build/workspace.sh" || die "the arm64 build failed"
  built=$(date +%s)
  (cd "$root" && PATH="$sam_venv/bin:$PATH" SAM_CLI_TELEMETRY=0 "$sam_venv/bin/sam" build >"$local_dir/sam-build.log" 2>&1) \
    || { tail -30 "$local_dir/sam-build.log" >&2; die "sam build failed (.local/sam-build.log)"; }
  say "package: arm64 workspace build $((built - started)) s, sam build $(( $(date +%s) - built )) s; .aws-sam/build holds $(find "$root/.aws-sam/build" -name bootstrap | wc -l) functions"
}

# Runs every test and closes with one line that totals them across all test binaries.
run_tests() {
  local log="$local_dir/test.log" status
  set +e
  (cd "$root" && cargo test --workspace --no-fail-fast 2>&1) | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
  return "$status"
}

# Chaos rounds (tests/src/chaos.rs): kill -9 the runner in the middle of runs, start a new
# one, check that every run succeeds with nothing lost or done twice. CHAOS_ROUNDS rounds
# (`make chaos`: 100; `make test` runs 10).
run_chaos() {
  local rounds=${1:-${CHAOS_ROUNDS:-100}} status=0
  stop_runner
  # The push round kills the runner between a commit at the fake GitHub and its record.
  stop_fakes
  start_fakes all
  say "chaos: $rounds rounds, about 35 s each (runner logs in .local/chaos-runner.log)"
  local restart=()
  if pg_running; then restart=(--restart-postgres "bash $root/infra/local/stack.sh restart-postgres"); fi
  (cd "$root" && "$(target_dir)/debug/chaos" --rounds "$rounds" --port "$(free_port)" \
    --runner "$(target_dir)/debug/autocrew-local" --root "$root" --log "$local_dir/chaos-runner.log" \
    "${restart[@]}") || status=$?
  stop_fakes
  return "$status"
}

# Schemathesis (tests/fuzz/api.py) against a runner's gateway, from the document it
# serves, with two users: no 5xx, and no status, type, header or body outside the
# document. FUZZ_EXAMPLES examples per operation (`make fuzz-api`: 200; `make test`: 25).
# The rate limits are lifted: one user sends thousands of requests a minute. The outside
# services are the local fakes, whatever tokens the environment holds: a fuzzed token is
# checked there, never at a real service.
run_fuzz_api() {
  local examples=${1:-${FUZZ_EXAMPLES:-200}} status=0
  stop_runner
  stop_fakes
  start_fakes all
  RATE_LIMIT_PER_USER=1000000000 RATE_LIMIT_PER_IP=1000000000 start_runner
  [ -f "$root/tests/client/out/check.js" ] || client_check
  node "$root/tests/client/out/check.js" "$runner_url" || status=$?
  say "fuzz: schemathesis, $examples examples per operation (report in .local/fuzz-api.log)"
  "$venv/bin/python" "$root/tests/fuzz/api.py" "$runner_url" --max-examples "$examples" --workers 2 \
    >"$local_dir/fuzz-api.log" 2>&1 || status=$?
  # Each run's summary (the REST API's, then GraphQL's), each under its heading.
  awk '/^fuzz: the GraphQL/ { print } / SUMMARY / { on = 1 } on { print } on && /^=+ .* in [0-9.]+s =+$/ { on = 0 }' \
    "$local_dir/fuzz-api.log"
  stop_runner
  stop_fakes
  [ "$status" = 0 ] || { sed -n '/ FAILURES /,/ SUMMARY /p' "$local_dir/fuzz-api.log" | head -80 >&2; die "schemathesis found failures: see .local/fuzz-api.log"; }
}

# The whole suite, then a bounded chaos run, a bounded fuzz of the API (the long ones are
# `make chaos` and `make fuzz-api`) and every benchmark in its smoke mode, so a bench the
# README names cannot break unseen. Every part runs whatever failed before it; the last
# lines name what failed, since a CI log may keep only its tail.
run_tests_and_chaos() {
  local failed=()
  run_tests || failed+=("the test suite")
  run_chaos "${CHAOS_ROUNDS:-10}" | tee "$local_dir/chaos.log" || failed+=("chaos")
  (run_fuzz_api "${FUZZ_EXAMPLES:-25}") || failed+=("the API fuzz")
  (BENCH_SMOKE=1 run_bench) || failed+=("bench")
  # The fuzz signs up as many users as the API lets one address in a minute (10); the
  # benches sign up theirs in the next window.
  sleep 61
  (BENCH_SMOKE=1 run_engine_bench) || failed+=("bench-engine")
  (BENCH_SMOKE=1 run_api_bench) || failed+=("bench-api")
  [ ${#failed[@]} = 0 ] && { say "make test: every part passed"; return 0; }
  tell_failures "${failed[@]}"
  return 1
}

# What failed, in a few lines: the failed tests with the first line of each panic, the
# failed chaos rounds, the fuzz's failing operations.
tell_failures() {
  say "make test FAILED: $(printf '%s, ' "$@" | sed 's/, $//')"
  local tests="$local_dir/test.log" chaos="$local_dir/chaos.log" fuzz="$local_dir/fuzz-api.log"
  if [ -f "$tests" ]; then
    grep -E '^test .* FAILED$' "$tests" | sed 's/^/  /' >&2 || true
    grep -A2 -E "^thread '.*' panicked at" "$tests" | head -40 | sed 's/^/    /' >&2 || true
    grep -E '^Error: ' "$tests" | head -20 | sed 's/^/    /' >&2 || true
  fi
  if [ -f "$chaos" ]; then
    grep -E '^round .*: FAILED|^[0-9]+ rounds:|over the 60 s target' "$chaos" | sed 's/^/  /' >&2 || true
  fi
  if [ -f "$fuzz" ]; then
    grep -E '^_+ .* _+$' "$fuzz" | head -20 | sed 's/^/  fuzz: /' >&2 || true
  fi
}
