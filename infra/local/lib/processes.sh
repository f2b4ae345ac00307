# shellcheck shell=bash
# Processes a verb starts beside the stack, each by PID file: the local runner, the fake
# outside services, the OpenAI-compatible server.

# The local runner hosts every function of template.yaml; it serves on a free port.
start_runner() {
  local port i
  port=$(free_port)
  runner_url="http://127.0.0.1:$port"
  # The fake EAS moves a build on at every look: a look every 2 s shows a build run and
  # finish in seconds. A real build (EXPO_TOKEN) is looked at every 30 s, as on AWS.
  if [ -z "${EXPO_TOKEN:-}" ]; then export JOB_POLL_SECONDS=${JOB_POLL_SECONDS:-2}; fi
  "$(target_dir)/debug/autocrew-local" --port "$port" --root "$root" >"$runner_log" 2>&1 &
  echo $! >"$runner_pid_file"
  for i in $(seq 1 150); do
    if http GET "$runner_url/health" /dev/null 2>/dev/null; then
      say "runner up at $runner_url (pid $(cat "$runner_pid_file")), log in .local/runner.log"
      return
    fi
    kill -0 "$(cat "$runner_pid_file")" 2>/dev/null || { tail -5 "$runner_log" >&2; die "the runner exited: see $runner_log"; }
    sleep 0.2
  done
  die "the runner did not answer on $runner_url within 30 s: see $runner_log"
}

stop_runner() {
  if [ -f "$runner_pid_file" ] && kill -0 "$(cat "$runner_pid_file")" 2>/dev/null; then
    kill "$(cat "$runner_pid_file")" && say "stopped the runner (pid $(cat "$runner_pid_file"))"
  fi
  rm -f "$runner_pid_file"
}

# The outside services the agents act through: service, the variable a real token comes
# from, the variable of its API's base URL.
services="github:GITHUB_TOKEN:GITHUB_API_URL vercel:VERCEL_TOKEN:VERCEL_API_URL resend:RESEND_API_KEY:RESEND_API_URL x:X_USER_TOKEN:X_API_URL expo:EXPO_TOKEN:EXPO_API_URL linkedin:LINKEDIN_TOKEN:LINKEDIN_API_URL"

# Local fakes of the services (GitHub, Vercel, EAS, Resend, X, LinkedIn) that keep state: a service with no real
# token in the environment (every service, with `start_fakes all`) is pointed at its fake
# before the runner starts.
start_fakes() {
  local i
  "$(target_dir)/debug/fake-services" >"$local_dir/fake-services.url" 2>"$fakes_log" &
  echo $! >"$fakes_pid_file"
  for i in $(seq 1 50); do
    fakes_url=$(head -1 "$local_dir/fake-services.url" 2>/dev/null || true)
    [ -n "$fakes_url" ] && break
    sleep 0.1
  done
  [ -n "$fakes_url" ] || die "fake-services did not start: see $fakes_log"
  local entry service var url_var
  for entry in $services; do
    IFS=: read -r service var url_var <<<"$entry"
    if [ -n "${!var:-}" ] && [ "${1:-}" != all ]; then
      say "$service: the real service (a token is in \$$var)"
    else
      export "$url_var=$fakes_url/$service"
    fi
  done
  # GitHub's device flow too, when GitHub is the fake (the fake's OAuth app accepts any id).
  if [ "${GITHUB_API_URL:-}" = "$fakes_url/github" ]; then
    export GITHUB_OAUTH_URL="$fakes_url/github" GITHUB_OAUTH_CLIENT_ID=${GITHUB_OAUTH_CLIENT_ID:-autocrew-local-oauth-app}
  fi
  # X's and LinkedIn's web flows too, when they are the fakes: X as a public client (PKCE
  # alone), LinkedIn with a client secret kept where a deployed stack keeps it (a secret in
  # moto). `autocrew connect x --browser` then prints a link to the fake's consent page.
  if [ "${X_API_URL:-}" = "$fakes_url/x" ]; then
    export X_OAUTH_URL="$fakes_url/x" X_OAUTH_CLIENT_ID=${X_OAUTH_CLIENT_ID:-autocrew-local-x-app}
  fi
  if [ "${LINKEDIN_API_URL:-}" = "$fakes_url/linkedin" ]; then
    export LINKEDIN_OAUTH_URL="$fakes_url/linkedin" LINKEDIN_OAUTH_CLIENT_ID=${LINKEDIN_OAUTH_CLIENT_ID:-autocrew-local-linkedin-app}
    OAUTH_CLIENT_SECRETS_SECRET=$(put_secret autocrew-local-oauth-clients '{"linkedin": "autocrew-local-linkedin-secret"}') \
      || die "could not keep the local OAuth apps' secrets in moto"
    export OAUTH_CLIENT_SECRETS_SECRET
  fi
  # Stripe too, unless a real one is configured: the fake's key and webhook secret are kept
  # where a deployed stack keeps them (a secret in moto); the runner's endpoint is set once
  # the runner is up (connect_stripe).
  if [ -z "${STRIPE_SECRET:-}" ]; then
    STRIPE_SECRET=$(put_secret autocrew-local-stripe '{"api_key": "sk_test_local", "webhook_secrets": ["whsec_local_demo"]}') \
      || die "could not keep the fake Stripe's key in moto"
    export STRIPE_SECRET STRIPE_API_URL="$fakes_url/stripe" STRIPE_PUBLISHABLE_KEY=pk_test_local
  fi
  say "fake GitHub, Vercel, EAS, Resend, X, LinkedIn and Stripe at $fakes_url (pid $(cat "$fakes_pid_file")); what they hold: $fakes_url/_state"
}

# The fake Stripe sends its signed events to the runner's webhook.
connect_stripe() {
  [ "${STRIPE_API_URL:-}" = "$fakes_url/stripe" ] || return 0
  http POST "$fakes_url/stripe/_fake/endpoint" "{\"url\": \"$runner_url/webhooks/stripe\", \"secret\": \"whsec_local_demo\"}" \
    || die "could not point the fake Stripe's webhooks at the runner"
}

# The demo's user subscribes: a Checkout link, paid on the fake Stripe (its page's button),
# then the signed webhooks change the plan, the period and the AI budget.
subscribe_on_fake_stripe() {
  [ "${STRIPE_API_URL:-}" = "$fakes_url/stripe" ] || return 0
  local link i
  link=$(autocrew billing --api "$runner_url" checkout indie) || return 1
  say "checkout: $link (paying it on the fake Stripe)"
  http POST "$link" '{}' || return 1
  for i in $(seq 1 50); do
    autocrew billing --api "$runner_url" | grep -q '^plan Indie' && break
    sleep 0.2
  done
  autocrew billing --api "$runner_url"
}

stop_fakes() {
  if [ -f "$fakes_pid_file" ] && kill -0 "$(cat "$fakes_pid_file")" 2>/dev/null; then
    kill "$(cat "$fakes_pid_file")" && say "stopped fake-services (pid $(cat "$fakes_pid_file"))"
  fi
  rm -f "$fakes_pid_file"
}

# Connects each service the agents act through for the demo's user: the real token from
# the environment, else a demo token the fake accepts.
connect_services() {
  local entry service var url_var
  for entry in $services; do
    IFS=: read -r service var url_var <<<"$entry"
    printf '%s\n' "${!var:-demo-$service-token-0123456789}" | autocrew connect "$service" --api "$runner_url" \
      || die "could not connect $service"
  done
}

# What the fakes hold after the run, as a person would check it.
show_fakes() {
  http GET "$fakes_url/_state" "$local_dir/fake-services.state.json" || return 0
  "$python" - "$local_dir/fake-services.state.json" <<'PY'
import json, sys
state = json.load(open(sys.argv[1]))
for repo in state["github"]:
    commits = ", ".join(f"{b}: {n} commits" for b, n in repo["commits_by_branch"].items())
    print(f"GitHub   {repo['repository']} ({'private' if repo['private'] else 'public'}; {commits}); last: {repo['last_commit']}")
    print(f"         files: {', '.join(repo['files'])}")
    for pull in repo["pull_requests"]:
        print(f"         pull request #{pull['number']}: {pull['title']}")
for email in state["resend"]:
    print(f"Resend   sent {email['subject']!r} from {email['from']} to {', '.join(email['to'])}")
for site in state["vercel"]:
    print(f"Vercel   {site['project']}: {'FAILED' if site['failed'] else site['url']} ({', '.join(site['files'])})")
for post in state["x"]:
    print(f"X        @{post['account']} posted: {post['text']}")
for post in state["linkedin"]:
    print(f"LinkedIn {post['author']} posted {post['urn']}: {post['text'].splitlines()[0]}")
for build in state["eas"]:
    print(f"EAS      {build['app']} {build['platform']} build of {build['git_ref']}: {build['status']}" + (f", {build['archive']}" if build["archive"] else ""))
if not any(state[service] for service in ("github", "resend", "x", "linkedin", "vercel", "eas")):
    print("the fakes hold nothing: no tool acted in the world")
PY
}

# Starts compatible-server (the offline model behind every provider's wire format) on a
# free port, by PID file, and prints the port.
start_compatible() {
  local port
  stop_compatible
  port=$(free_port)
  "$(target_dir)/debug/compatible-server" --port "$port" >"$local_dir/compatible-server.log" 2>&1 &
  echo $! >"$compatible_pid_file"
  wait_for_port "$port" 50
  printf '%s' "$port"
}

stop_compatible() {
  if [ -f "$compatible_pid_file" ] && kill -0 "$(cat "$compatible_pid_file")" 2>/dev/null; then
    kill "$(cat "$compatible_pid_file")" && say "stopped compatible-server (pid $(cat "$compatible_pid_file"))"
  fi
  rm -f "$compatible_pid_file"
}
