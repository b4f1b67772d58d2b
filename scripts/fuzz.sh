#!/usr/bin/env bash
# Fuzzes every parser that faces the outside (fuzz/fuzz_targets/, each calling the same
# nca::fuzz_entry function the test suite replays the corpus through), SECONDS each (60).
#
#   scripts/fuzz.sh [SECONDS]      every target in turn
#   TARGETS="csr cms" RUNS=10000000 scripts/fuzz.sh    chosen targets, a number of executions
#   MERGE=1 scripts/fuzz.sh ...    afterwards, merge what raised coverage into the committed
#                                  corpus, minimised (libFuzzer -merge=1)
#
# Needs the nightly toolchain and cargo-fuzz (installed when missing). Runs under `nice`: the
# fuzzer takes a core per job. New inputs go to fuzz/target/corpus/<target> (not committed);
# crashes to fuzz/artifacts/<target>/ — fix them and copy each input into fuzz/corpus/<target>/,
# which the unit test fuzz_entry::tests::every_corpus_input_replays then keeps fixed. Not run
# in CI. The final `#N DONE cov: … ft: …` and the stats lines of each run are what FUZZING.md
# records.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${1:-60}
TARGETS=${TARGETS:-csr cms ocsp_request application_json registry_answer crl_round_trip}
JOBS=${JOBS:-1}

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

# No sanitizer: the crate forbids unsafe code, and libFuzzer's executions are the point;
# debug assertions (overflow checks) stay on.
nice -n 19 cargo +nightly fuzz build -s none

for t in $TARGETS; do
    scratch=target/corpus/$t
    mkdir -p "$scratch" "artifacts/$t"
    limit=(-max_total_time="$SECONDS_EACH")
    [[ -n ${RUNS:-} ]] && limit=(-runs="$RUNS")
    echo "==== $t (${RUNS:-$SECONDS_EACH s}${RUNS:+ executions})"
    nice -n 19 cargo +nightly fuzz run -s none "$t" "$scratch" "corpus/$t" -- \
        "${limit[@]}" -jobs="$JOBS" -workers="$JOBS" -print_final_stats=1 -max_len=65536 \
        -artifact_prefix="artifacts/$t/" 2>&1 | tee "target/$t.log" | grep -E '^#[0-9]+ +DONE|^stat::|==ERROR|panicked|^artifact_prefix|Test unit written' || true
    if [[ ${MERGE:-0} == 1 ]]; then
        nice -n 19 cargo +nightly fuzz run -s none "$t" "corpus/$t" "$scratch" -- -merge=1 2>&1 | tail -1
    fi
done
