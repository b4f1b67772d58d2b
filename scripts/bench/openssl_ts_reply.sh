#!/usr/bin/env bash
# Peer baseline for the TSA: `openssl ts -reply`, OpenSSL's own RFC 3161 responder (a command,
# not a server: one process per token), with an RSA-2048 TSA key and certificate (critical EKU
# timeStamping) under a throwaway CA. NREPLY tokens from each of PROCS parallel loops (one per
# core by default) over the same query; reports tokens/s, and `openssl speed` RSA-2048 sign/s
# on the same cores as its bound. Works in a temp dir it removes; loopback-free.
#
# Knobs (env): NREPLY (per loop, 300), PROCS (nproc).
set -euo pipefail
NREPLY=${NREPLY:-300}
PROCS=${PROCS:-$(nproc)}
tmp=$(mktemp -d /tmp/bench-peer-ts.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
openssl req -x509 -new -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 -subj "/CN=Bench TS CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -keyout tsa.key -out tsa.csr -subj "/CN=Bench TSA" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\nextendedKeyUsage=critical,timeStamping\n' > tsa.ext
openssl x509 -req -in tsa.csr -CA ca.pem -CAkey ca.key -set_serial 0x7f02 -days 30 -extfile tsa.ext -out tsa.pem 2>/dev/null
cat > ts.cnf <<CNF
[ tsa ]
default_tsa = tsa1
[ tsa1 ]
dir = $tmp
serial = \$dir/serial
crypto_device = builtin
signer_cert = \$dir/tsa.pem
signer_key = \$dir/tsa.key
signer_digest = sha256
default_policy = 1.2.398.3.3.2.6.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
CNF
echo 01 > serial
echo "a document" > data.txt
openssl ts -query -data data.txt -sha256 -cert -out q.tsq 2>/dev/null
loop() { # index: its own serial file, so that the loops do not share one
    local i=$1 n
    mkdir -p "l$i" && echo "0$i" > "l$i/serial"
    sed "s|^serial = .*|serial = $tmp/l$i/serial|" ts.cnf > "l$i/ts.cnf"
    for ((n = 0; n < NREPLY; n++)); do
        openssl ts -reply -config "l$i/ts.cnf" -queryfile q.tsq -out "l$i/r.tsr" 2>/dev/null
    done
}
openssl ts -reply -config ts.cnf -queryfile q.tsq -out check.tsr 2>/dev/null
openssl ts -verify -data data.txt -in check.tsr -CAfile ca.pem >/dev/null 2>&1 || { echo "peer token does not verify" >&2; exit 1; }
start=$(date +%s.%N)
for ((i = 0; i < PROCS; i++)); do loop "$i" & done
wait
end=$(date +%s.%N)
rate=$(awk -v a="$start" -v b="$end" -v n=$((NREPLY * PROCS)) 'BEGIN{printf "%.1f", n/(b-a)}')
speed=$(openssl speed -seconds 5 -multi "$PROCS" rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $6}')
echo "RESULT openssl.ts_reply $rate tokens/s (openssl ts -reply, a process per token, $PROCS parallel loops, RSA-2048 TSA key, $(openssl version | cut -d' ' -f1-2))"
echo "RESULT openssl.speed_rsa2048_sign ${speed:-?} sign/s (openssl speed -multi $PROCS)"
