# shellcheck shell=bash
# The stack as a whole: moto, the build, up, down, status, and with_stack for a verb that
# needs it.

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
