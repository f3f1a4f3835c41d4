#!/usr/bin/env bash
# Starts and stops a local cluster of separate mariadbd processes, one per
# partition, each with its own data directory under DIR/node-I. Used by
# `make run` (DIR=var/cluster, data kept), by the test suite (a throwaway DIR
# on free ports) and by the benchmarks. Listens on 127.0.0.1 only.
#
# usage:
#   cluster.sh start DIR PORT [PORT...]   init missing nodes, start, wait ready
#   cluster.sh stop DIR                   stop every node of DIR (clean shutdown)
#   cluster.sh start-node DIR I PORT      start node I only
#   cluster.sh stop-node DIR I            stop node I only (clean shutdown)
#
# Environment: LAZYKV_DB_USER/LAZYKV_DB_PASSWORD (default lazykv/secret) is the
# account created on each node; LAZYKV_DB_FAST=1 trades durability for speed
# (tests only: commits survive a mariadbd crash, not a machine crash).
set -euo pipefail

DB_USER="${LAZYKV_DB_USER:-lazykv}"
DB_PASSWORD="${LAZYKV_DB_PASSWORD:-secret}"
MARIADBD="$(command -v mariadbd || echo /usr/sbin/mariadbd)"

die() { echo "cluster.sh: $*" >&2; exit 1; }

run_as_args() {
  # mariadbd refuses root unless told explicitly which user to run as.
  if [ "$(id -u)" -eq 0 ]; then echo "--user=root"; fi
}

init_node() {
  local node="$1"
  [ -d "$node/data/mysql" ] && return 0
  mkdir -p "$node/data"
  mariadb-install-db --no-defaults --datadir="$node/data" $(run_as_args) \
    --auth-root-authentication-method=socket --skip-test-db \
    >"$node/install.log" 2>&1 || { cat "$node/install.log" >&2; die "install-db failed in $node"; }
  touch "$node/.needs-user"
}

# A process counts as alive unless it is gone or a zombie: a killed mariadbd
# whose parent (this script) has exited may never be reaped in a container.
alive() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

node_pid() {
  local pidf="$1/mysqld.pid"
  [ -s "$pidf" ] || return 1
  local pid; pid=$(cat "$pidf")
  alive "$pid" || return 1
  echo "$pid"
}

start_node() {
  local node="$1" port="$2"
  init_node "$node"
  if node_pid "$node" >/dev/null; then return 0; fi
  local durability="--innodb-flush-log-at-trx-commit=1"
  if [ "${LAZYKV_DB_FAST:-0}" = 1 ]; then
    durability="--innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0"
  fi
  # max_allowed_packet: 4 MiB, below the 16 MiB of max_value_size the tests
  # use, so they show that lazykv's statements never need more than one
  # chunk and its key (src/chunks.h), whatever the values.
  # shellcheck disable=SC2086
  "$MARIADBD" --no-defaults $(run_as_args) \
    --datadir="$node/data" --socket="$node/mysqld.sock" --pid-file="$node/mysqld.pid" \
    --port="$port" --bind-address=127.0.0.1 --log-error="$node/error.log" \
    --skip-name-resolve --skip-log-bin --max-connections=2000 \
    --max-allowed-packet=4M --innodb-buffer-pool-size=128M \
    --innodb-log-file-size=64M $durability \
    >/dev/null 2>&1 &
  local pid=$!
  echo "$port" > "$node/port"
  local i
  for i in $(seq 1 300); do
    if mariadb-admin --no-defaults --socket="$node/mysqld.sock" -uroot ping >/dev/null 2>&1; then
      break
    fi
    if ! alive "$pid"; then
      # It exited at once: most often the port is taken by another server.
      tail -5 "$node/error.log" >&2
      die "mariadbd for $node exited at start (is port $port already in use?)"
    fi
    sleep 0.1
  done
  mariadb-admin --no-defaults --socket="$node/mysqld.sock" -uroot ping >/dev/null 2>&1 \
    || { tail -20 "$node/error.log" >&2; die "node $node did not start on port $port"; }
  if [ -e "$node/.needs-user" ]; then
    mariadb --no-defaults --socket="$node/mysqld.sock" -uroot <<SQL
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost';
SQL
    rm -f "$node/.needs-user"
  fi
}

stop_node() {
  local node="$1" pid
  pid=$(node_pid "$node") || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 300); do
    alive "$pid" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cmd="${1:-}"; shift || true
# mariadb-install-db resolves relative paths against its basedir: use absolute ones.
if [ $# -ge 1 ]; then set -- "$(realpath -m "$1")" "${@:2}"; fi
case "$cmd" in
  start)
    [ $# -ge 2 ] || die "usage: cluster.sh start DIR PORT [PORT...]"
    dir="$1"; shift
    mkdir -p "$dir"
    i=0
    for port in "$@"; do start_node "$dir/node-$i" "$port"; i=$((i + 1)); done
    ;;
  stop)
    [ $# -eq 1 ] || die "usage: cluster.sh stop DIR"
    for node in "$1"/node-*; do [ -d "$node" ] && stop_node "$node"; done
    ;;
  start-node) [ $# -eq 3 ] || die "usage: cluster.sh start-node DIR I PORT"; start_node "$1/node-$2" "$3" ;;
  stop-node)  [ $# -eq 2 ] || die "usage: cluster.sh stop-node DIR I"; stop_node "$1/node-$2" ;;
  *) die "usage: cluster.sh start|stop|start-node|stop-node ..." ;;
esac
