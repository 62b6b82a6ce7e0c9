# PostgreSQL 15 servers for tests, sourced after lib.sh. Each server is a fresh
# cluster in its own temporary directory, on a free loopback port, run as the
# user postgres (PostgreSQL refuses root) and stopped on exit, also on failure.
#
#   pg_available                 0 if PostgreSQL 15 and the postgres user exist
#   pg_start NAME [FSYNC]        initdb + start a primary; FSYNC on|off (default
#                                off: fast; crash tests must pass on)
#   pg_start_standby NAME PRIMARY  pg_basebackup -R + start a streaming standby;
#                                the primary waits for it on commit (synchronous
#                                replication), so a commit acknowledged before a
#                                crash of the primary is on the standby
#   pg_promote NAME | pg_stop NAME [MODE] | pg_stop_all
#   pg_port NAME | pg_pid NAME (the postmaster) | pg_conninfo NAME [extra]
#   pg_psql NAME SQL             run SQL as postgres over the Unix socket
#
# TCP connections need the password $pg_password (scram-sha-256), so tests go
# through libpq's password handling; the Unix socket (psql, replication) trusts.
pg_bin=/usr/lib/postgresql/15/bin
pg_password=tally-secret-$$
pg_root=""
declare -A pg_ports=()
pg_names=()

pg_available() { [ -x "$pg_bin/initdb" ] && id postgres >/dev/null 2>&1; }

pg_as() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# A free TCP port on 127.0.0.1 (bound and released: the server takes it next).
pg_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The servers' directory (postgres must reach it; lib.sh's $work is root's).
pg_init() {
  [ -z "$pg_root" ] || return 0
  pg_root=$(mktemp -d /tmp/tally-pg.XXXXXX)
  [ "$(id -u)" -ne 0 ] || chown postgres "$pg_root"
  trap 'pg_stop_all; cleanup' EXIT
}

pg_dir() { echo "$pg_root/$1"; }

pg_port() { echo "${pg_ports[$1]}"; }
pg_pid() { head -1 "$(pg_dir "$1")/data/postmaster.pid"; }
pg_conninfo() {
  echo "host=127.0.0.1 port=$(pg_port "$1") dbname=postgres user=postgres password=$pg_password ${2:-}"
}
pg_psql() {
  pg_as "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$pg_root" \
    -p "$(pg_port "$1")" -U postgres -d postgres -At -c "$2"
}

# Settings for every test server: loopback only, socket in our directory, quick.
pg_conf() {
  cat >> "$1/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $2
unix_socket_directories = '$pg_root'
fsync = $3
synchronous_commit = on
full_page_writes = on
shared_buffers = 64MB
max_wal_senders = 4
wal_level = replica
hot_standby = on
log_min_messages = warning
logging_collector = off
EOF
}

pg_ctl_start() {
  pg_as "$pg_bin/pg_ctl" -D "$(pg_dir "$1")/data" -l "$(pg_dir "$1")/log" -w -t 60 start \
    >/dev/null || { cat "$(pg_dir "$1")/log" >&2; fail "postgres $1 did not start"; }
}

pg_start() {
  local name=$1 fsync=${2:-off} dir port
  pg_init
  dir=$(pg_dir "$name"); port=$(pg_free_port)
  pg_as mkdir -p "$dir"
  echo "$pg_password" | pg_as tee "$dir/pw" >/dev/null
  pg_as "$pg_bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pw" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
    > "$dir.initdb.log" 2>&1 || { cat "$dir.initdb.log" >&2; fail "initdb $name failed"; }
  pg_conf "$dir/data" "$port" "$fsync"
  pg_ports[$name]=$port; pg_names+=("$name")
  pg_ctl_start "$name"
}

pg_start_standby() {
  local name=$1 primary=$2 dir port
  dir=$(pg_dir "$name"); port=$(pg_free_port)
  pg_as mkdir -p "$dir"
  pg_as "$pg_bin/pg_basebackup" -h "$pg_root" -p "$(pg_port "$primary")" -U postgres \
    -D "$dir/data" -R -X stream -c fast --no-sync \
    || fail "pg_basebackup of $primary for $name failed"
  pg_as sed -i "/^port = /d" "$dir/data/postgresql.conf"
  echo "port = $port" | pg_as tee -a "$dir/data/postgresql.conf" >/dev/null
  echo "cluster_name = '$name'" | pg_as tee -a "$dir/data/postgresql.conf" >/dev/null
  # -R wrote primary_conninfo; application_name makes it the synchronous standby.
  echo "primary_conninfo = 'host=$pg_root port=$(pg_port "$primary") user=postgres application_name=$name'" \
    | pg_as tee -a "$dir/data/postgresql.auto.conf" >/dev/null
  pg_ports[$name]=$port; pg_names+=("$name")
  pg_ctl_start "$name"
  pg_psql "$primary" "ALTER SYSTEM SET synchronous_standby_names = '$name'"
  pg_psql "$primary" "SELECT pg_reload_conf()" >/dev/null
  for _ in $(seq 100); do
    [ "$(pg_psql "$primary" "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")" = 1 ] && return 0
    sleep 0.1
  done
  fail "standby $name does not stream from $primary"
}

pg_promote() { pg_as "$pg_bin/pg_ctl" -D "$(pg_dir "$1")/data" -w -t 60 promote >/dev/null; }

pg_stop() {
  local dir; dir=$(pg_dir "$1")
  [ -f "$dir/data/postmaster.pid" ] || return 0
  pg_as "$pg_bin/pg_ctl" -D "$dir/data" -m "${2:-fast}" -w -t 60 stop >/dev/null 2>&1 || true
}

pg_stop_all() {
  local n
  for n in "${pg_names[@]}"; do
    # a test may have left it SIGSTOPped
    if [ -f "$(pg_dir "$n")/data/postmaster.pid" ]; then
      pkill -CONT -P "$(pg_pid "$n")" 2>/dev/null || true
      kill -CONT "$(pg_pid "$n")" 2>/dev/null || true
    fi
    pg_stop "$n" immediate
  done
  [ -z "$pg_root" ] || rm -rf "$pg_root"
}
