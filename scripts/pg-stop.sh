#!/usr/bin/env bash
# Stop a PostgreSQL started by scripts/pg-start.sh DIR (pg_ctl stop -m fast).
# Succeeds quietly when nothing runs there, so it can sit in a cleanup trap.
#
#   scripts/pg-stop.sh DIR
set -euo pipefail

[[ $# -eq 1 ]] || {
    echo "usage: $0 DIR" >&2
    exit 2
}
[[ -d $1 ]] || exit 0
dir=$(cd "$1" && pwd)
data=$dir/data
[[ -f $data/postmaster.pid ]] || exit 0

# The version that made the cluster, else the highest installed.
bin=/usr/lib/postgresql/$(cat "$data/PG_VERSION" 2>/dev/null || true)/bin
if [[ ! -x $bin/pg_ctl ]]; then
    bin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

cd "$dir"
if ((EUID == 0)); then
    runuser -u postgres -- "$bin/pg_ctl" stop -D "$data" -m fast -t 60 >/dev/null
else
    "$bin/pg_ctl" stop -D "$data" -m fast -t 60 >/dev/null
fi
echo "pg-stop: stopped $data" >&2
