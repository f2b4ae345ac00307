# shellcheck shell=bash
# The benchmarks. With BENCH_SMOKE=1 each runs briefly on the debug build: the figures mean
# nothing, but every step of the bench runs (`make test` does this, so a bench the README
# names cannot break unseen).

smoke() { [ "${BENCH_SMOKE:-}" = 1 ]; }

# The build a bench measures: release, or the debug build already made in smoke mode.
bench_profile() { if smoke; then printf debug; else printf release; fi; }

# The engine's cost per run (tests/src/bin/engine-bench.rs) with a release runner: CPU,
# commits, runs per second one at a time and with 10 in flight (offline model, cache off),
# then runs at a real model's pace. The rate limits are lifted: its users sign up and poll
# from one address, perhaps in the same minute as another bench's load.
run_engine_bench() {
  local profile size=()
  profile=$(bench_profile)
  stop_runner
  if smoke; then
    say "bench-engine, smoke mode: 2 runs a phase on the debug build"
    size=(--runs 2 --users 2 --trace-runs 1 --real-speed-runs 1 --pace-tps 2000 --file-tokens 200)
  else
    say "building the release runner (a cold release build takes several minutes)"
    (cd "$root" && cargo build --release --quiet -p autocrew-runner -p autocrew-tests --bin autocrew-local --bin engine-bench) \
      || die "cargo build --release failed"
    size=(--runs "${BENCH_RUNS:-30}")
  fi
  (cd "$root" && LLM_CACHE_TTL_SECS=0 RATE_LIMIT_PER_USER=1000000000 RATE_LIMIT_PER_IP=1000000000 \
    "$(target_dir)/$profile/engine-bench" "${size[@]}" \
    --port "$(free_port)" --runner "$(target_dir)/$profile/autocrew-local" --root "$root" \
    --log "$local_dir/bench-runner.log" --moto-pid-file "$moto_pid_file") || die "bench-engine failed"
}

# Unit economics (tests/src/bin/economics.rs): 20+ commands on the offline model behind the
# OpenAI wire format, their real prompts tokenized, priced at the routed models.
run_economics() {
  stop_runner
  (cd "$root" && RATE_LIMIT_PER_USER=1000000000 RATE_LIMIT_PER_IP=1000000000 \
    "$(target_dir)/debug/economics" --port "$(free_port)" --runner "$(target_dir)/debug/autocrew-local" \
    --root "$root" --log "$local_dir/economics-runner.log") || die "economics failed"
}

# The API's cost per request (tests/src/bin/api-bench.rs): wrk through a release runner's
# gateway, next to pgbench running the route's SQL. The rate limits are lifted for it (it
# is one user sending thousands of requests a second).
run_api_bench() {
  local profile size=()
  profile=$(bench_profile)
  stop_runner
  need_tools wrk
  if smoke; then
    say "bench-api, smoke mode: 1-second loads on the debug build"
    size=(--seconds 1 --connections 4)
  else
    say "building the release runner and bench (a cold release build takes several minutes)"
    # The bench calls the handler in its own process too: it is built optimised as well.
    (cd "$root" && cargo build --release --quiet -p autocrew-runner -p autocrew-tests --bin autocrew-local --bin api-bench) \
      || die "cargo build --release failed"
    size=(--seconds "${BENCH_SECONDS:-10}")
  fi
  (cd "$root" && RATE_LIMIT_PER_USER=1000000000 RATE_LIMIT_PER_IP=1000000000 \
    "$(target_dir)/$profile/api-bench" "${size[@]}" --port "$(free_port)" \
    --runner "$(target_dir)/$profile/autocrew-local" --root "$root" \
    --log "$local_dir/bench-api-runner.log" --pgbench "$(pg_bin)/pgbench") || die "bench-api failed"
}

# The gateway benchmark (tests/benches/gateway.rs), optimised build; in smoke mode 20 calls
# a case on the debug build.
# Memory recall at scale (tests/benches/memory.rs), built unoptimised like the tests: the
# time is Postgres's, not the client's.
run_memory_bench() {
  (cd "$root" && cargo bench -q --profile dev -p autocrew-tests --bench memory) || die "memory bench failed"
}

run_bench() {
  if smoke; then
    say "bench, smoke mode: 20 calls a case"
    (cd "$root" && BENCH_CALLS=20 cargo bench -q --profile dev -p autocrew-tests --bench gateway) || die "bench failed"
  else
    (cd "$root" && cargo bench -p autocrew-tests --bench gateway) || die "bench failed"
  fi
}
