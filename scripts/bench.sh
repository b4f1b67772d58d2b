#!/usr/bin/env bash
# Benchmarks (not tests): every figure beside the limit measured in the same run.
#
# 1. The issuance engine (CSR in, certificate recorded in SQLite), per key store (software,
#    SoftHSM2) and issuing-key algorithm (P-256, RSA-2048), beside the raw signing rate of the
#    same key and the CSR verification rate, combined as the crypto bound 1/(1/sign + 1/verify).
# 2. Issuance over HTTP: POST /api/v1/admin/certificates over keep-alive mutual TLS, beside
#    CFSSL's sign endpoint on the same key types (../shared/bench/peers/cfssl_sign.sh, wrk).
# 3. Status: OCSP answers/s at concurrency 64 (wrk, with and without a nonce) beside
#    `openssl ocsp` (peers/openssl_ocsp.sh, same concurrency); a full CRL of 1,000,000 entries
#    from the database beside `openssl ca -gencrl` (peers/openssl_crl.sh); the time from
#    `nca cert revoke` to the serial in OCSP and in the served delta CRL.
# 4. The outbox: a backlog of NOUTBOX monitoring messages drained to a loopback receiver, beside
#    the service key's raw and whole-CMS signing rates.
# 5. Applications: P1 end to end over HTTP (submit, identity, to-be-signed, confirmation signed
#    with the operator's key, the pair issued) on SQLite and on PostgreSQL, beside half the
#    issuing key's raw signing rate.
# 6. The TSA: POST /tsp tokens/s at concurrency 64 (wrk), beside the TSA key's raw signing rate
#    and the TSA engine in process, measured in the same run on the same key (`bench tsa`), per
#    key store; and `openssl ts -reply` as the peer (scripts/bench/openssl_ts_reply.sh).
# 7. OCSP signed ahead (presign): a full pass of `nca ocsp presign` over NPRESIGN certificates
#    in force (first signing: inserts; then `--all`: every answer signed anew, updates), on
#    SQLite and on PostgreSQL: seconds, answers/s, rows, bytes (answers' DER, the table on
#    PostgreSQL, the database file on SQLite, the WAL written on PostgreSQL), beside the
#    responder key's raw signing rate (`openssl speed`, 2 processes); then OCSP no-nonce
#    answers/s (wrk -t2 -c64) from a primary instance against the pre-signed store on
#    PostgreSQL, from a `--role status` instance on a streaming replica of it, and from a
#    static-response server (`bench static`, the same HTTP stack with nothing behind it) in
#    the same run.
# 8. A cluster: P1 applications per second with one, two and three `nca serve` instances on the
#    same PostgreSQL, the load spread evenly (one `bench applications` per instance, APP_CONC
#    in all), beside the same bound as section 5 (half the issuing key's raw signing rate).
# 9. Ratios (after the peers): the engine's share of its crypto bound, issuance over HTTP beside
#    CFSSL and step-ca (../shared/bench/peers/stepca_sign.sh, HTTPS, records to its database),
#    OCSP with a nonce beside `openssl ocsp`, each with both p99s; P1 against its 500 apps/s
#    goal with the confirmation's p99; the outbox drain against whole-CMS signing; the full CRL's
#    time against `openssl ca -gencrl`'s: RESULT ratio.* lines.
# 10. Statements (section `statements`, not in the default list): SQL statements per P1
#    application from sqlx's statement log (BENCHMARKS.md's method), and how many of them touch
#    the audit chain, the outbox, the steps, the applications and the certificates.
#
# Knobs: N (engine certificates, 20000), CONC (engine concurrency, 64), DURATION (HTTP seconds,
# 20), CONNS (HTTP connections, 32), STORES ("software pkcs11"), ALGS ("ec-p256 rsa-2048"),
# PEERS=0 to skip the peer runs, SECTIONS ("engine http status") to pick sections, NREVOKED
# (1000000), NOUTBOX (100000), APP_CONC (16), APP_DBS ("sqlite postgres"), NPRESIGN (500000), PRESIGN_ALGS ("ec-p256"),
# MAIL_DIR (where the letters go; a fresh directory on /dev/shm),
# NCA_BIN and BENCH_BIN (binaries to run instead of building target/release's). Loopback only.
# Output: RESULT lines, then a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}; CONC=${CONC:-64}; DURATION=${DURATION:-20}; CONNS=${CONNS:-32}
STORES=${STORES:-software pkcs11}; ALGS=${ALGS:-ec-p256 rsa-2048}; PEERS=${PEERS:-1}
SECTIONS=${SECTIONS:-engine http status outbox applications cluster tsa presign}; NREVOKED=${NREVOKED:-1000000}
NPRESIGN=${NPRESIGN:-500000}; PRESIGN_ALGS=${PRESIGN_ALGS:-ec-p256}
NOUTBOX=${NOUTBOX:-100000}; APP_CONC=${APP_CONC:-16}; APP_DBS=${APP_DBS:-sqlite postgres}
has() { [[ " $SECTIONS " == *" $1 "* ]]; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

need=()
command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v wrk >/dev/null || need+=(wrk)
command -v sqlite3 >/dev/null || need+=(sqlite3)
[[ -x /usr/bin/time ]] || need+=(time)
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need[@]}" >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
fi
module=/usr/lib/softhsm/libsofthsm2.so
[[ -f $module ]] || module=/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so

# NCA_BIN / BENCH_BIN: run other binaries (a before/after comparison) instead of building these.
if [[ -z ${NCA_BIN:-} ]]; then
    log "building release"
    cargo build --release --quiet --bin nca --example bench
fi
NCA=${NCA_BIN:-$PWD/target/release/nca}
BENCH=${BENCH_BIN:-$PWD/target/release/examples/bench}

tmp=$(mktemp -d /tmp/nca-bench.XXXXXX)
chmod 711 "$tmp"
# The letters (`file:` transport, two per P1 application) go to tmpfs, not to $tmp's disk: every
# run deletes the previous run's tens of thousands of files, and for minutes after, ext4 skips
# each recently deleted inode when it allocates one (`recently_deleted` and the directory's lock
# were a fifth of the service's CPU in P1, BENCHMARKS.md, #17's tenth round). A centre's mail
# spool is not emptied every minute; a benchmark run's is. MAIL_DIR overrides.
mail=${MAIL_DIR:-$(mktemp -d /dev/shm/nca-bench-mail.XXXXXX 2>/dev/null || mktemp -d "$tmp/mail.XXXXXX")}
export NCA_MAIL="file:$mail"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for g in pg pgp pgr; do scripts/pg-stop.sh "$tmp/$g" >/dev/null 2>&1 || true; done
    rm -rf "$tmp"
    [[ -n ${MAIL_DIR:-} ]] || rm -rf "$mail"
}
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

has engine && for store in $STORES; do
    for alg in $ALGS; do
        log "engine: $store $alg (n=$N, concurrency=$CONC)"
        out=$(env $(store_env "$store") NCA_LOG=warn timeout 600 "$BENCH" engine --alg "$alg" --csr "$tmp/$alg.csr" \
            --n "$N" --concurrency "$CONC" 2>/dev/null | grep '^RESULT')
        echo "$out"
        results+=("$out")
    done
done

# Starts `nca serve` in directory $1 on issuing key $2 and key store $3; sets $url and $pid.
serve() {
    local d=$1 alg=$2 store=$3
    mkdir -p "$d"
    sed "s/^issuing_key = .*/issuing_key = \"$alg\"/" ca-config/nca.toml > "$d/nca.toml"
    local envs; envs=$(store_env "$store")
    # The application form's rate limits (README, "Portal and console") would throttle a load
    # from one address: off for benchmarks.
    # `exec`, so that $! is `nca serve` itself: killing a subshell left the server running.
    (cd "$d" && exec env $envs NCA_CONFIG="$d/nca.toml" NCA_DATA_DIR="$d/data" NCA_LISTEN=127.0.0.1:0 \
        NCA_RATE_PER_ADDRESS=0 NCA_RATE_PER_IIN=0 \
        NCA_OPERATOR_LISTEN=127.0.0.1:0 NCA_LOG="${SERVE_LOG:-warn}" "$NCA" serve > "$d/serve.out" 2> "$d/serve.log") &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 600); do grep -q '^listening:' "$d/serve.out" 2>/dev/null && break; sleep 0.1; done
    url=$(sed -n 's/^listening: public=\([^ ]*\).*/\1/p' "$d/serve.out")
    op_url=$(sed -n 's/^listening: .*operator=\([^ ]*\).*/\1/p' "$d/serve.out")
    [[ -n $url ]] || { cat "$d/serve.log" >&2; exit 1; }
    echo "$envs" > "$d/env"
}

# How the group-commit writers grouped over a load: from two scrapes of /metrics (README,
# "Applications"), per writer, the commits per second, the operations per commit (mean, and the
# share of commits of one or two), and the shares of the wall time spent inside transactions and
# waiting for the write connection (SQLite has one, which the writer shares with the outbox and
# the OCSP pre-signer: inside near 100 %, the writer is the bound).
group_commits() {
    python3 - "$@" <<'PY'
import re, sys
a, b, t0, t1, label = sys.argv[1:6]
def read(path):
    v = {}
    for line in open(path):
        m = re.match(r'nca_store_group_commit_(\w+)\{writer="(\w+)"(?:,le="([^"]+)")?\} (\S+)', line)
        if m:
            v[(m[1], m[2], m[3])] = float(m[4])
    return v
x, y, secs = read(a), read(b), float(t1) - float(t0)
for w in sorted({k[1] for k in y}):
    d = lambda k, le=None: y.get((k, w, le), 0) - x.get((k, w, le), 0)
    commits, ops = d("operations_count"), d("operations_sum")
    small = d("operations_bucket", "2")
    print(f"RESULT applications.group_commit.{w} {commits / secs:.0f} commits/s {label} "
          f"(ops/commit {ops / max(commits, 1):.2f}, commits of 1-2 ops {100 * small / max(commits, 1):.0f} %, "
          f"in transactions {100 * d('busy_seconds_total') / secs:.0f} % (BEGIN {100 * d('begin_seconds_total') / secs:.0f} %, "
          f"COMMIT {100 * d('commit_seconds_total') / secs:.0f} %) and waiting for the write connection "
          f"{100 * d('wait_seconds_total') / secs:.0f} % of the wall time, failures {d('failures_total'):.0f})")
PY
}

has http && for alg in $ALGS; do
    for store in $STORES; do
        log "http: $store $alg (${DURATION}s, $CONNS connections)"
        d="$tmp/http-$store-$alg"
        serve "$d" "$alg" "$store"
        out=$("$BENCH" http --url "$op_url" --ca "$d/data/ca/root.pem" --cert "$d/data/admin/auth.crt" \
            --key "$d/data/admin/auth.key" --csr "$tmp/$alg.csr" --seconds "$DURATION" --connections "$CONNS" \
            | grep '^RESULT' | sed "s/\$/ key_store=$store alg=$alg/")
        echo "$out"
        results+=("$out")
        kill "$pid" 2>/dev/null || true
    done
done

if has status; then
    for alg in $ALGS; do
        d="$tmp/status-$alg"
        serve "$d" "$alg" software
        # The responder key is of the issuing key's family (P-256, or RSA-2048).
        (cd "$d" && env $(cat "$d/env") NCA_CONFIG="$d/nca.toml" NCA_DATA_DIR="$d/data" NCA_LOG=warn "$NCA" cert issue \
            --profile individual-auth --csr "$tmp/ec-p256.csr" --iin 850315306048 --surname A --name B > "$d/a.pem")
        openssl ocsp -issuer "$d/data/ca/issuing.pem" -cert "$d/a.pem" -no_nonce -reqout "$d/nononce.der" >/dev/null
        openssl ocsp -issuer "$d/data/ca/issuing.pem" -cert "$d/a.pem" -reqout "$d/nonce.der" >/dev/null
        for mode in nononce nonce; do
            log "ocsp: $alg $mode (wrk -t2 -c64 ${DURATION}s)"
            out=$(OCSP_REQ="$d/$mode.der" timeout $((DURATION + 30)) wrk -t2 -c64 -d"${DURATION}s" --timeout 10s \
                -s scripts/bench/ocsp.lua "$url/ocsp" | grep '^WRK')
            line="RESULT ocsp.$mode $(sed -n 's/.*ok_per_s=\([^ ]*\).*/\1/p' <<<"$out") responses/s responder=$alg p50_ms=$(sed -n 's/.*p50_ms=\([^ ]*\).*/\1/p' <<<"$out") p99_ms=$(sed -n 's/.*p99_ms=\([^ ]*\).*/\1/p' <<<"$out") (wrk -t2 -c64, keep-alive)"
            echo "$line"; results+=("$line")
        done

        # Revocation to OCSP and to the served delta CRL.
        serial=$(openssl x509 -in "$d/a.pem" -noout -serial | cut -d= -f2)
        start=$(date +%s.%N)
        (cd "$d" && env $(cat "$d/env") NCA_CONFIG="$d/nca.toml" NCA_DATA_DIR="$d/data" NCA_LOG=warn "$NCA" cert revoke \
            "$serial" --reason keyCompromise >/dev/null)
        revoked=$(date +%s.%N)
        until openssl ocsp -issuer "$d/data/ca/issuing.pem" -cert "$d/a.pem" -url "$url/ocsp" -noverify 2>/dev/null | grep -q ': revoked'; do sleep 0.05; done
        ocsp_at=$(date +%s.%N)
        until curl -s "$url/crl/nca-delta.crl" | openssl crl -inform DER -noout -text 2>/dev/null | grep -q "$serial"; do sleep 0.1; done
        delta_at=$(date +%s.%N)
        line="RESULT revoke_to_ocsp $(awk -v a="$start" -v b="$ocsp_at" 'BEGIN{printf "%.2f", b-a}') s (nca cert revoke, a process of its own, took $(awk -v a="$start" -v b="$revoked" 'BEGIN{printf "%.2f", b-a}') s) responder=$alg"
        echo "$line"; results+=("$line")
        line="RESULT revoke_to_delta_crl $(awk -v a="$start" -v b="$delta_at" 'BEGIN{printf "%.2f", b-a}') s responder=$alg"
        echo "$line"; results+=("$line")
        kill "$pid" 2>/dev/null || true
    done

    log "crl: $NREVOKED revoked entries, full CRL from SQLite"
    d="$tmp/crl"
    mkdir -p "$d"
    (cd "$d" && NCA_KEY_STORE=software NCA_DATA_DIR="$d/data" NCA_LOG=warn "$NCA" init >/dev/null 2>&1)
    python3 - "$d/data/nca.db" "$NREVOKED" <<'PY'
import os, sqlite3, sys, time
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
now = int(time.time()) - 10
def rows():
    for i in range(n):
        b = bytearray(os.urandom(20)); b[0] = 0x10 | (b[0] & 0x6f)
        yield ("nca", b.hex(), now - 86400, (1, 4, 5, 0)[i % 4], now - 5)
c.executemany("INSERT INTO revocations (issuer, serial, revoked_at, reason, recorded_at) VALUES (?,?,?,?,?)", rows())
c.commit()
PY
    t=$( { cd "$d" && NCA_KEY_STORE=software NCA_DATA_DIR="$d/data" NCA_LOG=warn /usr/bin/time -f "TIME %e %M" "$NCA" crl publish >/dev/null; } 2>&1 | grep '^TIME')
    size=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select length(der) from crls order by number desc limit 1').fetchone()[0])" "$d/data/nca.db")
    line="RESULT crl.full.$NREVOKED $(awk '{print $2}' <<<"$t") s peak_rss=$(( $(awk '{print $3}' <<<"$t") / 1024 )) MiB der_bytes=$size (nca crl publish: process start to CRL recorded, RSA-2048 issuer, SQLite)"
    echo "$line"; results+=("$line")
fi

has outbox && for store in $STORES; do
    log "outbox: $NOUTBOX messages, $store service key"
    out=$(env $(store_env "$store") NCA_LOG=warn timeout 900 "$BENCH" outbox --n "$NOUTBOX" 2>/dev/null | grep '^RESULT')
    echo "$out"; results+=("$out")
done

if has applications; then
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj /CN=a -keyout "$tmp/app-auth.key" \
        -out "$tmp/app-auth.csr" 2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj /CN=s -keyout "$tmp/app-sign.key" \
        -out "$tmp/app-sign.csr" 2>/dev/null
    [[ " $APP_DBS " != *" postgres "* ]] || pg_url=$(scripts/pg-start.sh "$tmp/pg" "${BENCH_PG_PORT:-55499}" | tail -1)
    for db in $APP_DBS; do
        for alg in $ALGS; do
            d="$tmp/apps-$db-$alg"
            if [[ $db == postgres ]]; then
                name="bench_$RANDOM"
                psql "${pg_url%/*}/postgres" -qc "CREATE DATABASE $name" >/dev/null
                export NCA_DATABASE_URL="${pg_url%/*}/$name"
            else
                unset NCA_DATABASE_URL
            fi
            serve "$d" "$alg" software
            centre=$(curl -s "$url/api/v1/centres" | python3 -c 'import json,sys; print(json.load(sys.stdin)["regions"][0]["localities"][0]["centres"][0]["id"])')
            (cd "$d" && env $(cat "$d/env") NCA_CONFIG="$d/nca.toml" NCA_DATA_DIR="$d/data" NCA_LOG=warn "$NCA" operator add \
                --iin 920708497088 --surname Сейітқали --name Айгерім --centre "$centre" --out "$d/op" \
                --key-algorithm ec-p256 >/dev/null)
            log "applications: $db $alg (${DURATION}s, concurrency $APP_CONC)"
            # The service's own CPU over the load (its utime and stime, in clock ticks), beside the
            # client's, which the load process prints: which of them is the limit.
            cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat"); t0=$(date +%s.%N)
            curl -s "$url/metrics" > "$d/metrics.0"
            out=$(NCA_KEY_STORE=software NCA_LOG=warn "$BENCH" applications --public "$url" --operator "$op_url" \
                --data "$d/data" --operator-dir "$d/op" --centre "$centre" --alg "$alg" --label "database=$db" \
                --auth-csr "$tmp/app-auth.csr" --sign-csr "$tmp/app-sign.csr" --seconds "$DURATION" \
                --concurrency "$APP_CONC" 2>/dev/null | grep '^RESULT')
            cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat"); t1=$(date +%s.%N)
            curl -s "$url/metrics" > "$d/metrics.1"
            out+=$'\n'"RESULT applications.server_cpu $(awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" \
                'BEGIN {printf "%.2f", (b - a) / 100 / (e - s)}') cores database=$db issuing=$alg (nca serve, over the load process's run, its bound probe included)"
            out+=$'\n'$(group_commits "$d/metrics.0" "$d/metrics.1" "$t0" "$t1" "database=$db issuing=$alg")
            echo "$out"; results+=("$out")
            kill "$pid" 2>/dev/null || true
        done
    done
    unset NCA_DATABASE_URL
    scripts/pg-stop.sh "$tmp/pg" >/dev/null 2>&1 || true
fi

# SQL statements per P1 application (section `statements`, BENCHMARKS.md's method): sqlx's
# statement log of `nca serve` on SQLite with an RSA-2048 issuing key, counted over DURATION
# seconds idle (the publisher's, the outbox's and the workflow's polls) and then over DURATION
# seconds of P1 at concurrency 4; (load - idle) / applications completed. BEGIN and COMMIT are
# not logged by sqlx, so not counted.
if has statements; then
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj /CN=a -keyout "$tmp/app-auth.key" \
        -out "$tmp/app-auth.csr" 2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj /CN=s -keyout "$tmp/app-sign.key" \
        -out "$tmp/app-sign.csr" 2>/dev/null
    unset NCA_DATABASE_URL
    d="$tmp/statements"
    SERVE_LOG=warn,sqlx::query=debug serve "$d" rsa-2048 software
    centre=$(curl -s "$url/api/v1/centres" | python3 -c 'import json,sys; print(json.load(sys.stdin)["regions"][0]["localities"][0]["centres"][0]["id"])')
    (cd "$d" && env $(cat "$d/env") NCA_CONFIG="$d/nca.toml" NCA_DATA_DIR="$d/data" NCA_LOG=warn "$NCA" operator add \
        --iin 920708497088 --surname Сейітқали --name Айгерім --centre "$centre" --out "$d/op" \
        --key-algorithm ec-p256 >/dev/null)
    count() { grep -c 'sqlx::query' "$d/serve.log" || true; }
    log "statements: ${DURATION}s idle, then ${DURATION}s of P1 at concurrency 4"
    c0=$(count); sleep "$DURATION"; c1=$(count)
    out=$(NCA_KEY_STORE=software NCA_LOG=warn "$BENCH" applications --public "$url" --operator "$op_url" \
        --data "$d/data" --operator-dir "$d/op" --centre "$centre" --alg rsa-2048 --label "database=sqlite" \
        --auth-csr "$tmp/app-auth.csr" --sign-csr "$tmp/app-sign.csr" --seconds "$DURATION" \
        --concurrency 4 2>/dev/null | grep '^RESULT')
    sleep 1; c2=$(count)
    done_apps=$(sqlite3 "$d/data/nca.db" "SELECT COUNT(*) FROM applications WHERE status = 'completed'")
    line="RESULT statements.per_application $(awk -v a="$c0" -v b="$c1" -v c="$c2" -v n="$done_apps" \
        'BEGIN {printf "%.1f", ((c - b) - (b - a)) / n}') statements (sqlx log; $((c2 - c1)) under load, $((c1 - c0)) idle, $done_apps applications; SQLite, RSA-2048, concurrency 4)"
    echo "$line"; results+=("$line")
    for k in "INSERT INTO audit " "audit_chains" "INTO outbox" "UPDATE outbox" "application_steps" "UPDATE applications" "certificates"; do
        echo "RESULT statements.of \"$k\" $(sed -n "$((c1 + 1)),\$p" <<<"$(grep 'sqlx::query' "$d/serve.log")" | grep -c "$k" || true)"
    done
    kill "$pid" 2>/dev/null || true
fi

if has cluster; then
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj /CN=a -keyout "$tmp/app-auth.key" \
        -out "$tmp/app-auth.csr" 2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj /CN=s -keyout "$tmp/app-sign.key" \
        -out "$tmp/app-sign.csr" 2>/dev/null
    pg_url=$(scripts/pg-start.sh "$tmp/pgc" "${BENCH_PG_PORT:-55498}" | tail -1)
    alg=ec-p256
    for n in 1 2 3; do
        name="bench_cluster_${n}_$RANDOM"
        psql "${pg_url%/*}/postgres" -qc "CREATE DATABASE $name" >/dev/null
        export NCA_DATABASE_URL="${pg_url%/*}/$name"
        d="$tmp/cluster-$n"
        urls=(); op_urls=(); cpids=()
        for i in $(seq 1 "$n"); do
            # The instances share the data directory (keys, TLS, admin credentials) as a
            # deployment's machines share their HSM and configuration.
            if ((i == 1)); then
                serve "$d" "$alg" software
            else
                (cd "$d" && exec env $(cat "$d/env") NCA_CONFIG="$d/nca.toml" NCA_DATA_DIR="$d/data" \
                    NCA_LISTEN=127.0.0.1:0 NCA_OPERATOR_LISTEN=127.0.0.1:0 NCA_RATE_PER_ADDRESS=0 NCA_RATE_PER_IIN=0 \
                    NCA_LOG=warn "$NCA" serve > "$d/serve-$i.out" 2> "$d/serve-$i.log") &
                pid=$!; pids+=("$pid")
                for _ in $(seq 1 600); do grep -q '^listening:' "$d/serve-$i.out" 2>/dev/null && break; sleep 0.1; done
                url=$(sed -n 's/^listening: public=\([^ ]*\).*/\1/p' "$d/serve-$i.out")
                op_url=$(sed -n 's/^listening: .*operator=\([^ ]*\).*/\1/p' "$d/serve-$i.out")
                [[ -n $url ]] || { cat "$d/serve-$i.log" >&2; exit 1; }
            fi
            urls+=("$url"); op_urls+=("$op_url"); cpids+=("$pid")
        done
        centre=$(curl -s "${urls[0]}/api/v1/centres" | python3 -c 'import json,sys; print(json.load(sys.stdin)["regions"][0]["localities"][0]["centres"][0]["id"])')
        (cd "$d" && env $(cat "$d/env") NCA_CONFIG="$d/nca.toml" NCA_DATA_DIR="$d/data" NCA_LOG=warn "$NCA" operator add \
            --iin 920708497088 --surname Сейітқали --name Айгерім --centre "$centre" --out "$d/op" \
            --key-algorithm ec-p256 >/dev/null)
        log "cluster: $n instance(s) on one PostgreSQL (${DURATION}s, concurrency $APP_CONC in all)"
        outs=()
        for i in $(seq 0 $((n - 1))); do
            NCA_KEY_STORE=software NCA_LOG=warn "$BENCH" applications --public "${urls[$i]}" --operator "${op_urls[$i]}" \
                --data "$d/data" --operator-dir "$d/op" --centre "$centre" --alg "$alg" --label "instances=$n" \
                --auth-csr "$tmp/app-auth.csr" --sign-csr "$tmp/app-sign.csr" --seconds "$DURATION" \
                --concurrency $((APP_CONC / n)) 2>/dev/null | grep '^RESULT' > "$d/bench-$i.out" &
            outs+=($!)
        done
        wait "${outs[@]}"
        cat "$d"/bench-*.out
        total=$(cat "$d"/bench-*.out | sed -n 's/^RESULT applications.completed \([0-9.]*\).*/\1/p' | awk '{s += $1} END {printf "%.0f", s}')
        bound=$(sed -n 's/^RESULT applications.bound \([0-9.]*\).*/\1/p' "$d/bench-0.out")
        line="RESULT cluster.applications $total apps/s instances=$n database=postgres alg=$alg (sum over the instances; bound $bound apps/s measured by the first load process)"
        echo "$line"; results+=("$line")
        for p in "${cpids[@]}"; do kill "$p" 2>/dev/null || true; done
        sleep 1
    done
    unset NCA_DATABASE_URL
    scripts/pg-stop.sh "$tmp/pgc" >/dev/null 2>&1 || true
fi

# The TSA trusts the clock here: a benchmark host's kernel may say "unsynchronised".
has tsa && export NCA_TSA_CLOCK=trust && for store in $STORES; do
    d="$tmp/tsa-$store"
    serve "$d" rsa-2048 "$store"
    log "tsa: $store raw signing and engine"
    out=$(cd "$d" && env $(cat "$d/env") NCA_CONFIG="$d/nca.toml" NCA_DATA_DIR="$d/data" \
        NCA_LOG=warn timeout 600 "$BENCH" tsa --n 4000 --concurrency 64 2>/dev/null | grep '^RESULT')
    echo "$out"; results+=("$out")
    raw=$(sed -n 's/^RESULT tsa.raw_sign \([0-9.]*\).*/\1/p' <<<"$out")
    echo data > "$d/data.txt"
    openssl ts -query -data "$d/data.txt" -sha256 -cert -out "$d/q.tsq" 2>/dev/null
    log "tsa: $store POST /tsp (wrk -t2 -c64 ${DURATION}s)"
    # The server's CPU time over the run (utime + stime, USER_HZ 100), for tokens per CPU-second.
    spid=$(ss -Hltnp "sport = :${url##*:}" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)
    cpu() { awk '{ sub(/.*\) /, ""); print ($12 + $13) / 100 }' "/proc/$spid/stat"; }
    c0=$(cpu)
    w=$(TSP_REQ="$d/q.tsq" timeout $((DURATION + 30)) wrk -t2 -c64 -d"${DURATION}s" --timeout 10s \
        -s scripts/bench/tsp.lua "$url/tsp" | grep '^WRK')
    c1=$(cpu)
    ok=$(sed -n 's/.*ok_per_s=\([^ ]*\).*/\1/p' <<<"$w")
    # The raw rate again, right after the load: on a shared machine one reading can fall in a
    # busy moment; the higher of the two is the limit the HTTP figure is judged against.
    again=$(cd "$d" && env $(cat "$d/env") NCA_CONFIG="$d/nca.toml" NCA_DATA_DIR="$d/data" \
        NCA_LOG=warn timeout 600 "$BENCH" tsa --n 4000 --raw-only 2>/dev/null | grep '^RESULT' | sed 's/tsa.raw_sign/tsa.raw_sign_after/')
    echo "$again"; results+=("$again")
    raw2=$(sed -n 's/^RESULT tsa.raw_sign_after \([0-9.]*\).*/\1/p' <<<"$again")
    raw=$(awk -v a="$raw" -v b="$raw2" 'BEGIN{print (b > a) ? b : a}')
    line="RESULT tsa.http $ok tokens/s key_store=$store p50_ms=$(sed -n 's/.*p50_ms=\([^ ]*\).*/\1/p' <<<"$w") p99_ms=$(sed -n 's/.*p99_ms=\([^ ]*\).*/\1/p' <<<"$w") errors=$(sed -n 's/.*errors=\([^ ]*\).*/\1/p' <<<"$w") (wrk -t2 -c64, keep-alive, RSA-2048 TSA key, certReq)"
    echo "$line"; results+=("$line")
    reqs=$(sed -n 's/.*requests=\([^ ]*\).*/\1/p' <<<"$w")
    per_cpu=$(awk -v n="$reqs" -v a="$c0" -v b="$c1" 'BEGIN{ if (b > a) printf "%.0f", n/(b-a); else print 0 }')
    rawcpu=$(sed -n 's/^RESULT tsa.raw_sign_per_cpu_s \([0-9.]*\).*/\1/p' <<<"$out")
    line="RESULT tsa.http_per_cpu_s $per_cpu tokens/cpu-s key_store=$store (server CPU $(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.1f", b-a}') s for $reqs tokens; raw $rawcpu signs/cpu-s: $(awk -v a="$per_cpu" -v b="$rawcpu" 'BEGIN{ if (b > 0) printf "%.0f", 100*a/b; else print "?" }') %)"
    echo "$line"; results+=("$line")
    line="RESULT tsa.http_vs_raw $(awk -v a="$ok" -v b="$raw" 'BEGIN{printf "%.0f", 100*a/b}') % key_store=$store (of the higher raw reading, $raw /s; goal >= 70)"
    echo "$line"; results+=("$line")
    kill "$pid" 2>/dev/null || true
done

if [[ $PEERS == 1 ]] && has tsa; then
    log "peer: openssl ts -reply"
    out=$(bash scripts/bench/openssl_ts_reply.sh 2>/dev/null | grep '^RESULT' || true)
    echo "$out"; results+=("$out")
fi

if has presign; then
    # Free ports of the kernel's choosing: others' benchmarks share the machine.
    free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
    pg_port=$(free_port); replica_port=$(free_port)
    pg_url=$(scripts/pg-start.sh "$tmp/pgp" "$pg_port" | tail -1)
    for alg in $PRESIGN_ALGS; do
        case $alg in
            ec-p256) speed=ecdsap256 ;;
            *) speed=rsa2048 ;;
        esac
        raw=$(openssl speed -multi 2 -seconds 5 "$speed" 2>/dev/null | tail -1 | awk '{print $(NF-1)}')
        line="RESULT presign.raw_sign $raw signatures/s key=$alg (openssl speed -multi 2 $speed: the responder key's bound on this machine)"
        echo "$line"; results+=("$line")
        for db in sqlite postgres; do
            d="$tmp/presign-$db-$alg"
            mkdir -p "$d"
            sed "s/^issuing_key = .*/issuing_key = \"$alg\"/" ca-config/nca.toml > "$d/nca.toml"
            envs="NCA_KEY_STORE=software NCA_CONFIG=$d/nca.toml NCA_DATA_DIR=$d/data NCA_LOG=warn"
            if [[ $db == postgres ]]; then
                name="presign_$RANDOM"
                psql "${pg_url%/*}/postgres" -qc "CREATE DATABASE $name" >/dev/null
                envs="$envs NCA_DATABASE_URL=${pg_url%/*}/$name"
            fi
            (cd "$d" && env $envs "$NCA" init >/dev/null 2>&1)
            log "presign: $db $alg, $NPRESIGN certificates in force"
            # Rows as issuance leaves them, for the columns the pre-signer reads; the DER is a
            # stand-in (the answer does not carry the certificate).
            if [[ $db == sqlite ]]; then
                python3 - "$d/data/nca.db" "$NPRESIGN" <<'PY'
import os, sqlite3, sys, time
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
now = int(time.time())
def rows():
    for i in range(n):
        b = bytearray(os.urandom(20)); b[0] = 0x10 | (b[0] & 0x6f)
        yield ("nca", b.hex(), "issued", "individual-auth", "CN=bench", "IIN850315306048", b.hex(),
               now - 60, now + 365 * 86400, b"\x30", b"\x30", now - 60, now - 60)
c.executemany("INSERT INTO certificates (issuer, serial, status, profile, subject, holder, key_sha256, "
              "not_before, not_after, tbs, der, created_at, issued_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows())
c.commit()
PY
            else
                psql "${pg_url%/*}/$name" -qc "INSERT INTO certificates (issuer, serial, status, profile, subject, holder, key_sha256, \
                    not_before, not_after, tbs, der, created_at, issued_at) SELECT 'nca', '1' || md5(i::text) || substr(md5((-i)::text), 1, 7), \
                    'issued', 'individual-auth', 'CN=bench', 'IIN850315306048', md5(i::text), extract(epoch from now())::bigint - 60, \
                    extract(epoch from now())::bigint + 365 * 86400, '\\x30', '\\x30', extract(epoch from now())::bigint - 60, \
                    extract(epoch from now())::bigint - 60 FROM generate_series(1, $NPRESIGN) AS i; ANALYZE" >/dev/null
            fi
            for pass in first all; do
                flag=; [[ $pass == all ]] && flag=--all
                size0=$(du -sb "$d/data" | cut -f1)
                wal0=; [[ $db == postgres ]] && wal0=$(psql "${pg_url%/*}/postgres" -XAtc "SELECT pg_current_wal_lsn()")
                out=$( { cd "$d" && env $envs /usr/bin/time -f "TIME %e %M" "$NCA" ocsp presign $flag; } 2>&1)
                t=$(grep '^TIME' <<<"$out"); r=$(grep '^signed=' <<<"$out")
                secs=$(sed -n 's/.*seconds=\([^ ]*\).*/\1/p' <<<"$r"); signed=$(sed -n 's/^signed=\([^ ]*\).*/\1/p' <<<"$r")
                extra="der_bytes=$(sed -n 's/.* der_bytes=\([^ ]*\).*/\1/p' <<<"$r")"
                if [[ $db == postgres ]]; then
                    wal=$(psql "${pg_url%/*}/postgres" -XAtc "SELECT pg_current_wal_lsn() - '$wal0'::pg_lsn")
                    extra="$extra table_bytes=$(sed -n 's/.* table_bytes=\([^ ]*\).*/\1/p' <<<"$r") wal_bytes=${wal%.*}"
                else
                    extra="$extra data_dir_growth_bytes=$(( $(du -sb "$d/data" | cut -f1) - size0 ))"
                fi
                line="RESULT presign.$pass.$db $secs s answers=$signed rate=$(awk -v n="$signed" -v s="$secs" 'BEGIN{printf "%.0f", n/s}')/s $extra peak_rss=$(( $(awk '{print $3}' <<<"$t") / 1024 ))MiB key=$alg (nca ocsp presign $flag: pages of 1000, 8 signatures in flight, one transaction a page)"
                echo "$line"; results+=("$line")
            done
        done
    done

    # Serving: a primary instance on the PostgreSQL above, a status instance on a streaming
    # replica of it, and the static server, each with wrk -t2 -c64 on the same request.
    log "presign: serving from the store (primary, replica, static)"
    d="$tmp/presign-serve"
    mkdir -p "$d"
    name="serve_$RANDOM"
    psql "${pg_url%/*}/postgres" -qc "CREATE DATABASE $name" >/dev/null
    export NCA_DATABASE_URL="${pg_url%/*}/$name"
    serve "$d" ec-p256 software
    primary_url=$url
    (cd "$d" && env $(cat "$d/env") NCA_CONFIG="$d/nca.toml" NCA_DATA_DIR="$d/data" NCA_LOG=warn "$NCA" cert issue \
        --profile individual-auth --csr "$tmp/ec-p256.csr" --iin 850315306048 --surname A --name B > "$d/a.pem")
    openssl ocsp -issuer "$d/data/ca/issuing.pem" -cert "$d/a.pem" -no_nonce -reqout "$d/nononce.der" >/dev/null
    # The pre-signer takes a new certificate up within a quarter second; the answer is then
    # the kept one, which the static server serves too.
    sleep 2
    curl -s -H 'content-type: application/ocsp-request' --data-binary "@$d/nononce.der" "$primary_url/ocsp" > "$d/answer.der"
    PG_REPLICA_OF=$pg_port scripts/pg-start.sh "$tmp/pgr" "$replica_port" >/dev/null
    rd="$tmp/presign-status"
    mkdir -p "$rd"
    (cd "$rd" && exec env NCA_KEY_STORE=software NCA_CONFIG="$d/nca.toml" NCA_DATA_DIR="$d/data" NCA_LISTEN=127.0.0.1:0 \
        NCA_DATABASE_URL="postgres://postgres@127.0.0.1:$replica_port/$name" NCA_LOG=warn "$NCA" serve --role status > "$rd/serve.out" 2> "$rd/serve.log") &
    pids+=("$!"); status_pid=$!
    for _ in $(seq 1 300); do grep -q '^listening:' "$rd/serve.out" 2>/dev/null && break; sleep 0.1; done
    status_url=$(sed -n 's/^listening: public=\([^ ]*\).*/\1/p' "$rd/serve.out")
    [[ -n $status_url ]] || { cat "$rd/serve.log" >&2; exit 1; }
    "$BENCH" static --body "$d/answer.der" > "$rd/static.out" 2>/dev/null &
    pids+=("$!"); static_pid=$!
    for _ in $(seq 1 100); do grep -q '^listening:' "$rd/static.out" 2>/dev/null && break; sleep 0.1; done
    static_url=$(sed -n 's/^listening: \(.*\)/\1/p' "$rd/static.out")
    [[ -n $static_url ]] || { echo "bench static did not start" >&2; exit 1; }
    for target in primary:$primary_url status:$status_url static:$static_url; do
        which=${target%%:*}; u=${target#*:}
        out=$(OCSP_REQ="$d/nononce.der" timeout $((DURATION + 30)) wrk -t2 -c64 -d"${DURATION}s" --timeout 10s \
            -s scripts/bench/ocsp.lua "$u/ocsp" | grep '^WRK')
        line="RESULT presign.serve.$which $(sed -n 's/.*ok_per_s=\([^ ]*\).*/\1/p' <<<"$out") responses/s p50_ms=$(sed -n 's/.*p50_ms=\([^ ]*\).*/\1/p' <<<"$out") p99_ms=$(sed -n 's/.*p99_ms=\([^ ]*\).*/\1/p' <<<"$out") errors=$(sed -n 's/.*errors=\([^ ]*\).*/\1/p' <<<"$out") (wrk -t2 -c64 ${DURATION}s, keep-alive, no nonce, P-256 responder, $(case $which in status) echo "PostgreSQL streaming replica" ;; static) echo "static bytes, no database" ;; *) echo PostgreSQL ;; esac))"
        echo "$line"; results+=("$line")
    done
    kill "$pid" "$status_pid" "$static_pid" 2>/dev/null || true
    wait "$status_pid" 2>/dev/null || true
    unset NCA_DATABASE_URL
    scripts/pg-stop.sh "$tmp/pgr" >/dev/null 2>&1 || true
    scripts/pg-stop.sh "$tmp/pgp" >/dev/null 2>&1 || true
fi

if [[ $PEERS == 1 ]] && has status; then
    log "peer: openssl ocsp (-c64)"
    out=$(DURATION=$DURATION CONNS=64 bash ../shared/bench/peers/openssl_ocsp.sh 2>/dev/null | grep '^RESULT' || true)
    echo "$out"; results+=("$out")
    log "peer: openssl ca -gencrl ($NREVOKED)"
    out=$(NREVOKED=$NREVOKED bash ../shared/bench/peers/openssl_crl.sh 2>/dev/null | grep '^RESULT' || true)
    echo "$out"; results+=("$out")
fi

if [[ $PEERS == 1 ]] && has http; then
    log "peer: CFSSL sign (${DURATION}s, wrk -c$CONNS)"
    out=$(DURATION=$DURATION CONNS=$CONNS bash ../shared/bench/peers/cfssl_sign.sh 2>/dev/null | grep '^RESULT' || true)
    echo "$out"
    results+=("$out")
    # step-ca answers over HTTPS and records each certificate in its database, as nca does.
    log "peer: step-ca sign (${DURATION}s, wrk -c$CONNS)"
    out=$(DURATION=$DURATION CONNS=$CONNS bash ../shared/bench/peers/stepca_sign.sh 2>/dev/null | grep '^RESULT' || true)
    echo "$out"
    results+=("$out")
fi

# The ratios the targets of issue #17 name, each from figures of this run: the engine's share of
# its crypto bound, issuance over HTTP against CFSSL and step-ca (with both p99s), the nonce OCSP
# path against `openssl ocsp`. A figure missing from the run (its section or PEERS off) is skipped.
all=$(printf '%s\n' "${results[@]}")
fig() { # fig REGEX -> the value (second field) of the first RESULT line matching it
    { grep -E "$1" <<<"$all" || true; } | head -1 | awk '{print $3}'
}
kv() { # kv REGEX KEY -> KEY=value from the first RESULT line matching REGEX
    { grep -E "$1" <<<"$all" || true; } | head -1 | sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p"
}
ratio() { # ratio NAME A B NOTE -> RESULT NAME A/B, when both are there
    [[ -n $2 && -n $3 ]] || return 0
    local line
    line="RESULT $1 $(awk -v a="$2" -v b="$3" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "?" }') x ($4)"
    echo "$line"; ratios+=("$line")
}
ratios=()
for alg in $ALGS; do
    peer=${alg/ec-p256/ecdsa-p256}
    for store in $STORES; do
        e=$(fig "^RESULT engine_vs_bound .*key_store=$store alg=$alg ")
        if [[ -n $e ]]; then
            line="RESULT ratio.engine_of_bound.$store.$alg $e % (goal >= 70)"; echo "$line"; ratios+=("$line")
        fi
    done
    h=$(fig "^RESULT http_issue .*key_store=software alg=$alg$")
    hp=$(fig "^RESULT http_p99 .*key_store=software alg=$alg$")
    for p in cfssl stepca; do
        goal=$([[ $p == cfssl ]] && { [[ $alg == rsa-2048 ]] && echo 3 || echo 2; } || { [[ $alg == rsa-2048 ]] && echo 4 || echo 3; })
        ratio "ratio.http_over_$p.$alg" "$h" "$(fig "^RESULT $p\.sign\.$peer\.throughput ")" \
            "nca software $h certs/s p99 $hp ms; $p $(fig "^RESULT $p\.sign\.$peer\.throughput ") certs/s p99 $(fig "^RESULT $p\.sign\.$peer\.p99 ") ms; goal >= $goal x with a lower p99"
    done
    o=$(fig "^RESULT ocsp\.nonce .*responder=$alg ")
    op=$(kv "^RESULT ocsp\.nonce .*responder=$alg " p99_ms)
    ratio "ratio.ocsp_nonce_over_openssl.$alg" "$o" "$(fig "^RESULT openssl\.ocsp\.$peer\.nonce\.throughput ")" \
        "nca $o /s p99 $op ms; openssl ocsp $(fig "^RESULT openssl\.ocsp\.$peer\.nonce\.throughput ") /s p99 $(fig "^RESULT openssl\.ocsp\.$peer\.nonce\.p99 ") ms; goal >= 3 x with a lower p99"
    for db in sqlite postgres; do
        a=$(fig "^RESULT applications\.completed .*database=$db issuing=$alg ")
        ap=$(fig "^RESULT applications\.confirmation_p99 .*database=$db issuing=$alg ")
        if [[ -n $a ]]; then
            line="RESULT ratio.applications_of_goal.$db.$alg $(awk -v a="$a" 'BEGIN{printf "%.2f", a/500}') x ($a apps/s of the 500 goal on SQLite; confirmation p99 $ap ms, goal < 50)"
            echo "$line"; ratios+=("$line")
        fi
    done
done
d=$(fig "^RESULT outbox\.drain ")
ratio "ratio.outbox_drain_of_cms_sign" "$d" "$(fig "^RESULT outbox\.cms_sign ")" "drained $d msgs/s; whole-CMS signing $(fig "^RESULT outbox\.cms_sign ") /s; goal >= 0.80"
c=$(fig "^RESULT crl\.full\.")
ratio "ratio.crl_time_of_openssl" "$c" "$(fig "^RESULT openssl\.gencrl\.wall ")" "nca crl publish $c s; openssl ca -gencrl $(fig "^RESULT openssl\.gencrl\.wall ") s; lower is faster"
results+=("${ratios[@]}")

echo "== summary =="
printf '%s\n' "${results[@]}"
