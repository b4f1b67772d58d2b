#!/usr/bin/env bash
# Make a fresh SoftHSM2 token for development and tests.
#
#   hsm/setup-token.sh DIR LABEL [USER_PIN] [SO_PIN]
#
# Writes DIR/softhsm2.conf (tokens in DIR/tokens), initialises a token labelled
# LABEL in the first free slot, and prints the line to eval:
#
#   eval "$(hsm/setup-token.sh /tmp/hsm nca-dev-ca)"
#
# Run it again with the same DIR and another label to add a second token; a
# label that already exists there is refused. Find tokens by label, never by
# slot number: SoftHSM2 gives an initialised token a new, random slot id.
#
# The default PINs (user 1234, SO 5678) are for development and tests only.
set -euo pipefail

usage() {
    echo "usage: $0 DIR LABEL [USER_PIN] [SO_PIN]" >&2
    exit 2
}
die() {
    echo "$0: $*" >&2
    exit 1
}

[[ $# -ge 2 && $# -le 4 ]] || usage
dir=$1
label=$2
user_pin=${3:-1234}
so_pin=${4:-5678}
[[ -n $dir ]] || usage

# Limits of PKCS#11 (label: 32 bytes) and SoftHSM2 (PIN: 4-255 characters).
# Checked here because softhsm2-util otherwise falls back to prompting.
label_bytes=$(printf '%s' "$label" | wc -c)
((label_bytes >= 1 && label_bytes <= 32)) || die "label must be 1-32 bytes: '$label'"
for pin in "$user_pin" "$so_pin"; do
    ((${#pin} >= 4 && ${#pin} <= 255)) || die "PINs must be 4-255 characters"
done

command -v softhsm2-util >/dev/null || die "softhsm2-util not found (apt-get install softhsm2)"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

mkdir -p "$dir/tokens"
dir=$(cd "$dir" && pwd)
conf=$dir/softhsm2.conf
tokendir=$dir/tokens
# Escape what sed's replacement treats specially: \ & and the | delimiter.
tokendir_sed=$(printf '%s' "$tokendir" | sed 's/[\\&|]/\\&/g')
sed "s|@TOKENDIR@|$tokendir_sed|" "$here/softhsm2.conf.in" >"$conf"
export SOFTHSM2_CONF=$conf

# --show-slots pads labels to 32 characters; compare them exactly.
if softhsm2-util --show-slots 2>/dev/null | awk -v want="$label" '
    /^[[:space:]]*Label:/ {
        l = $0
        sub(/^[[:space:]]*Label:[[:space:]]*/, "", l)
        sub(/[[:space:]]+$/, "", l)
        if (l == want) found = 1
    }
    END { exit !found }'; then
    die "a token labelled '$label' already exists in $tokendir"
fi

# stdout is kept for the export line; softhsm2-util's report goes to stderr.
softhsm2-util --init-token --free --label "$label" --pin "$user_pin" --so-pin "$so_pin" \
    </dev/null >&2

printf 'export SOFTHSM2_CONF=%q\n' "$conf"
