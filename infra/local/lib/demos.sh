# shellcheck shell=bash
# The demos: the main job run live with the CLI, on the compatible adapter, on one
# provider's checked official path, and at a real model's pace.

# One runner at a time: a runner left from an earlier demo would take this run's messages
# from the shared queues (with its own configuration), so it is stopped first, and the
# demo's own runner is stopped when the run ends.
demo() {
  autocrew health
  stop_runner
  stop_fakes
  start_fakes
  start_runner
  connect_stripe
  local t0=$SECONDS status=0
  connect_services
  # Approvals are answered as they come: the demo runs without a person at the keyboard.
  autocrew run "$demo_command" --api "$runner_url" --auto-approve --timeout-secs "${DEMO_TIMEOUT_SECS:-300}" || status=$?
  [ "$status" != 0 ] || subscribe_on_fake_stripe || status=$?
  show_fakes
  stop_runner
  stop_fakes
  [ "$status" = 0 ] || die "the run did not succeed (autocrew run exited $status)"
  say "demo finished in $((SECONDS - t0)) s"
}

# The demo over the OpenAI-compatible adapter's real HTTP path (issue 4's done-when):
# compatible-server serves the offline model behind the Chat Completions wire format, and
# the steps call it by OPENAI_BASE_URL, priced by an operator's table.
demo_compatible() {
  local port
  port=$(start_compatible)
  say "compatible-server (the offline model behind the OpenAI wire format) at http://127.0.0.1:$port/v1"
  export OPENAI_BASE_URL="http://127.0.0.1:$port/v1" LLM_MODEL=offline-template-1 \
    MODEL_TABLE_PATH="$root/infra/local/compatible-models.json" LLM_CACHE_TTL_SECS=0
  demo
  stop_compatible
}

# The demo on one provider's official path (issue 8's done-when, as a user sees it):
# compatible-server answers in every provider's wire format, and in front of it
# tests/provider_check/server.py checks each request against the provider's published
# request types (its official SDK) and documented per-model rules. Only PROVIDER's key is
# set, its base URL pointing at the checker; what the checker saw is printed at the end.
checker_pid_file="$local_dir/provider-check.pid"

demo_checked() {
  local provider=${PROVIDER:-anthropic} port check_port
  case "$provider" in openai|anthropic|gemini) ;; *) die "PROVIDER must be openai, anthropic or gemini" ;; esac
  port=$(start_compatible)
  check_port=$(free_port)
  "$venv/bin/python" "$root/tests/provider_check/server.py" --backend "http://127.0.0.1:$port" --port "$check_port" \
    >"$local_dir/provider-check.log" 2>&1 &
  echo $! >"$checker_pid_file"
  wait_for_port "$check_port" 100
  say "provider check for $provider at http://127.0.0.1:$check_port, the offline model behind it"
  export ANTHROPIC_API_KEY="" OPENAI_API_KEY="" OPENAI_BASE_URL="" GEMINI_API_KEY="" LLM_MODEL="" LLM_FALLBACK="" LLM_CACHE_TTL_SECS=0
  case "$provider" in
    openai) export OPENAI_API_KEY=sk-check OPENAI_API_BASE_URL="http://127.0.0.1:$check_port/v1" ;;
    anthropic) export ANTHROPIC_API_KEY=sk-ant-check ANTHROPIC_BASE_URL="http://127.0.0.1:$check_port" ;;
    gemini) export GEMINI_API_KEY=AIza-check GEMINI_BASE_URL="http://127.0.0.1:$check_port" ;;
  esac
  demo
  http GET "http://127.0.0.1:$check_port/_check/stats" "$local_dir/provider-check.json"
  "$python" -c "import json,sys; s=json.load(open(sys.argv[1]))[sys.argv[2]]; print(f'[stack] {sys.argv[2]}: {s[\"requests\"]} requests checked, {len(s[\"refused\"])} refused, {s[\"strict_schemas\"]} with a strict schema, {s[\"strict_tools\"]} with strict tools'); [print('  refused:', r) for r in s['refused']]" \
    "$local_dir/provider-check.json" "$provider"
  kill "$(cat "$checker_pid_file")" 2>/dev/null && say "stopped the provider check (pid $(cat "$checker_pid_file"))"
  rm -f "$checker_pid_file"
  stop_compatible
}

# The demo at a real model's pace (issue 20's done-when): demo-checked on PROVIDER's
# official path (anthropic by default), the model streaming PACE_TPS tokens a second (60)
# after PACE_FIRST_TOKEN_MS (700), writing files of PACE_FILE_TOKENS tokens (2,000) one a
# turn. Then each task's wall time, invocations and Lambda GB-seconds (run-report).
demo_realtime() {
  export PACE_TPS=${PACE_TPS:-60} PACE_FILE_TOKENS=${PACE_FILE_TOKENS:-2000} PACE_FIRST_TOKEN_MS=${PACE_FIRST_TOKEN_MS:-700}
  export DEMO_TIMEOUT_SECS=${DEMO_TIMEOUT_SECS:-3600}
  say "a real model's pace: $PACE_TPS tokens a second after $PACE_FIRST_TOKEN_MS ms, files of $PACE_FILE_TOKENS tokens (this takes minutes)"
  demo_checked
  (cd "$root" && "$(target_dir)/debug/run-report" --root "$root")
}
