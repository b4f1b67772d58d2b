#!/usr/bin/env bash
# Start a throwaway PostgreSQL for tests and print its URL.
#
#   url=$(scripts/pg-start.sh DIR PORT)   # postgres://postgres@127.0.0.1:PORT/nca_test
#   scripts/pg-stop.sh DIR
#
# Cluster in DIR/data, log in DIR/postgres.log, Unix socket in DIR; listens on
# 127.0.0.1:PORT only, trusts every local connection, and trades durability
# for speed (fsync off): never point it at data you want to keep. Uses the
# highest version under /usr/lib/postgresql (Debian's postgresql package).
# As root it runs as the postgres OS user, who must be able to reach DIR
# (its parents need o+x). Keep DIR short: socket paths are limited to ~100
# bytes. Run it again on the same DIR to restart a stopped cluster.
# PG_READY_TIMEOUT (seconds, default 60) bounds the wait for readiness.
#
#   url=$(PG_REPLICA_OF=PRIMARY_PORT scripts/pg-start.sh DIR PORT)
#
# makes DIR a hot-standby streaming replica of the server on 127.0.0.1:PRIMARY_PORT
# (pg_basebackup -R -c fast: it follows the primary's WAL and answers read-only queries)
# instead of a new cluster; the URL names the same database, read-only. Every
# cluster this script makes can serve replicas: wal_level = replica, WAL senders
# and slots, and initdb's pg_hba trusts replication connections from 127.0.0.1.
set -euo pipefail

die() {
    echo "pg-start: $*" >&2
    exit 1
}
# PostgreSQL refuses to run as root.
as_pg() {
    if ((EUID == 0)); then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

[[ $# -eq 2 ]] || {
    echo "usage: $0 DIR PORT" >&2
    exit 2
}
[[ $2 =~ ^[0-9]{1,5}$ ]] || die "bad port: $2"
port=$((10#$2))
((port > 0 && port < 65536)) || die "bad port: $2"
ready_timeout=${PG_READY_TIMEOUT:-60}
db=nca_test

bin=$(for d in /usr/lib/postgresql/*/bin; do
    if [[ -x $d/postgres ]]; then echo "$d"; fi
done | sort -V | tail -n 1)
[[ -n $bin ]] || die "no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql)"

mkdir -p "$1"
dir=$(cd "$1" && pwd)
data=$dir/data
log=$dir/postgres.log
if ((EUID == 0)); then
    chown postgres: "$dir"
    runuser -u postgres -- test -w "$dir" -a -x "$dir" ||
        die "the postgres user cannot use $dir (check the permissions of its parents)"
fi
# The server's working directory must be one it can read (not /root).
cd "$dir"

# pg_isready would happily report someone else's server on this port.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "127.0.0.1:$port is already in use"
fi

replica_of=${PG_REPLICA_OF:-}
if [[ -n $replica_of && ! -f $data/PG_VERSION ]]; then
    [[ $replica_of =~ ^[0-9]{1,5}$ ]] || die "bad PG_REPLICA_OF: $replica_of"
    echo "pg-start: pg_basebackup of 127.0.0.1:$replica_of into $data" >&2
    as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$replica_of" -U postgres -D "$data" -R -X stream -c fast \
        --no-sync >"$dir/basebackup.log" 2>&1 || {
        cat "$dir/basebackup.log" >&2
        die "pg_basebackup failed"
    }
    sq="'"
    # The copy carries the primary's settings: its own port and socket directory instead.
    cat >>"$data/postgresql.conf" <<CONF

# Added by scripts/pg-start.sh: a streaming replica of 127.0.0.1:$replica_of.
port = $port
unix_socket_directories = '${dir//$sq/$sq$sq}'
hot_standby = on
CONF
elif [[ ! -f $data/PG_VERSION ]]; then
    echo "pg-start: initdb ($bin) in $data" >&2
    as_pg "$bin/initdb" -D "$data" --auth=trust -U postgres -E UTF8 --locale=C --no-sync \
        >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        die "initdb failed"
    }
    sq="'"
    cat >>"$data/postgresql.conf" <<CONF

# Added by scripts/pg-start.sh: a throwaway test cluster.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '${dir//$sq/$sq$sq}'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
# Streaming replicas (PG_REPLICA_OF above); these are the defaults, stated so that a
# replica test does not depend on them.
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
CONF
elif [[ -f $data/postmaster.pid ]]; then
    die "a server is already running on $data (scripts/pg-stop.sh $dir)"
else
    as_pg sed -i "s/^port = .*/port = $port/" "$data/postgresql.conf"
fi

echo "pg-start: starting on 127.0.0.1:$port, log in $log" >&2
as_pg "$bin/pg_ctl" start -D "$data" -l "$log" -W >/dev/null

# Ask through the socket in DIR, where only our server can answer.
# shellcheck disable=SC2016 # expanded by the inner shell
if ! timeout "$ready_timeout" bash -c \
    'until "$1" -q -h "$2" -p "$3" -U postgres; do sleep 0.2; done' \
    _ "$bin/pg_isready" "$dir" "$port"; then
    echo "pg-start: not ready after ${ready_timeout}s; end of $log:" >&2
    tail -n 30 "$log" >&2 || true
    as_pg "$bin/pg_ctl" stop -D "$data" -m immediate >/dev/null 2>&1 || true
    exit 1
fi
"$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres ||
    die "ready on the socket but not on 127.0.0.1:$port"

if [[ -n $replica_of ]]; then
    # A replica is read-only: the database is the primary's.
    echo "postgres://postgres@127.0.0.1:$port/$db"
    exit 0
fi

exists=$("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -XAtc \
    "SELECT 1 FROM pg_database WHERE datname = '$db'")
if [[ $exists != 1 ]]; then
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
fi

echo "postgres://postgres@127.0.0.1:$port/$db"
