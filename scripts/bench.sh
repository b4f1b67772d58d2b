#!/usr/bin/env bash
# Benchmarks (not tests): every figure beside the limit measured in the same run.
#
# 1. The issuance engine (CSR in, certificate recorded in SQLite), per key store (software,
#    SoftHSM2) and issuing-key algorithm (P-256, RSA-2048), beside the raw signing rate of the
#    same key and the CSR verification rate, combined as the crypto bound 1/(1/sign + 1/verify).
# 2. Issuance over HTTP: POST /api/v1/admin/certificates over keep-alive mutual TLS, beside
#    CFSSL's sign endpoint on the same key types (../shared/bench/peers/cfssl_sign.sh, wrk).
#
# Knobs: N (engine certificates, 20000), CONC (engine concurrency, 64), DURATION (HTTP seconds,
# 20), CONNS (HTTP connections, 32), STORES ("software pkcs11"), ALGS ("ec-p256 rsa-2048"),
# PEERS=0 to skip the CFSSL run. Loopback only. Output: RESULT lines, then a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}; CONC=${CONC:-64}; DURATION=${DURATION:-20}; CONNS=${CONNS:-32}
STORES=${STORES:-software pkcs11}; ALGS=${ALGS:-ec-p256 rsa-2048}; PEERS=${PEERS:-1}
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

need=()
command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need[@]}" >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
fi
module=/usr/lib/softhsm/libsofthsm2.so
[[ -f $module ]] || module=/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so

log "building release"
cargo build --release --quiet --bin nca --example bench
NCA=$PWD/target/release/nca
BENCH=$PWD/target/release/examples/bench

tmp=$(mktemp -d /tmp/nca-bench.XXXXXX)
chmod 711 "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

openssl req -new -nodes -newkey rsa:2048 -subj /CN=bench -keyout "$tmp/rsa-2048.key" -out "$tmp/rsa-2048.csr" 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj /CN=bench \
    -keyout "$tmp/ec-p256.key" -out "$tmp/ec-p256.csr" 2>/dev/null

results=()
store_env() { # store -> env assignments for a fresh key store
    if [[ $1 == pkcs11 ]]; then
        local dir="$tmp/hsm-$RANDOM"
        mkdir -p "$dir"
        eval "$(hsm/setup-token.sh "$dir" nca-bench 1234 5678 2>/dev/null)"
        echo "SOFTHSM2_CONF=$SOFTHSM2_CONF NCA_KEY_STORE=pkcs11 NCA_PKCS11_MODULE=$module NCA_PKCS11_TOKEN=nca-bench NCA_PKCS11_PIN=1234"
    else
        echo "NCA_KEY_STORE=software"
    fi
}

for store in $STORES; do
    for alg in $ALGS; do
        log "engine: $store $alg (n=$N, concurrency=$CONC)"
        out=$(env $(store_env "$store") NCA_LOG=warn timeout 600 "$BENCH" engine --alg "$alg" --csr "$tmp/$alg.csr" \
            --n "$N" --concurrency "$CONC" 2>/dev/null | grep '^RESULT')
        echo "$out"
        results+=("$out")
    done
done

for alg in $ALGS; do
    for store in $STORES; do
        log "http: $store $alg (${DURATION}s, $CONNS connections)"
        d="$tmp/http-$store-$alg"
        mkdir -p "$d"
        sed "s/^issuing_key = .*/issuing_key = \"$alg\"/; s/^root_key = .*/root_key = \"$([[ $alg == ec-p256 ]] && echo ec-p256 || echo rsa-2048)\"/" \
            ca-config/nca.toml > "$d/nca.toml"
        envs=$(store_env "$store")
        (cd "$d" && env $envs NCA_CONFIG="$d/nca.toml" NCA_DATA_DIR="$d/data" NCA_LISTEN=127.0.0.1:0 \
            NCA_OPERATOR_LISTEN=127.0.0.1:0 NCA_LOG=warn "$NCA" serve > "$d/serve.out" 2> "$d/serve.log") &
        pids+=($!)
        for _ in $(seq 1 600); do grep -q '^listening:' "$d/serve.out" 2>/dev/null && break; sleep 0.1; done
        url=$(sed -n 's/^listening: .*operator=\(https:[^ ]*\).*/\1/p' "$d/serve.out")
        [[ -n $url ]] || { cat "$d/serve.log" >&2; exit 1; }
        out=$("$BENCH" http --url "$url" --ca "$d/data/ca/root.pem" --cert "$d/data/admin/auth.crt" \
            --key "$d/data/admin/auth.key" --csr "$tmp/$alg.csr" --seconds "$DURATION" --connections "$CONNS" \
            | grep '^RESULT' | sed "s/\$/ key_store=$store alg=$alg/")
        echo "$out"
        results+=("$out")
        kill "${pids[-1]}" 2>/dev/null || true
    done
done

if [[ $PEERS == 1 ]]; then
    log "peer: CFSSL sign (${DURATION}s, wrk -c$CONNS)"
    out=$(DURATION=$DURATION CONNS=$CONNS bash ../shared/bench/peers/cfssl_sign.sh 2>/dev/null | grep '^RESULT' || true)
    echo "$out"
    results+=("$out")
fi

echo "== summary =="
printf '%s\n' "${results[@]}"
