# shellcheck shell=bash
# Shared by every verb: paths, messages, the target folder, small helpers.

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

# Waits until something listens on loopback PORT (at most TRIES tenths of a second).
wait_for_port() {
  local i
  for i in $(seq 1 "$2"); do
    "$python" -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null && return
    sleep 0.1
  done
  die "nothing listens on 127.0.0.1:$1"
}
