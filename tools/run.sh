#!/usr/bin/env bash
# `make run`: a local 3-node MariaDB cluster under var/ (data kept between
# runs), the databases and tables, lazykv-sync in a loop (a pass every 5
# seconds, as cron would every minute), and lazykvd on 127.0.0.1:8080 in the
# foreground. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG="${LAZYKV_CONFIG:-configuration.cfg}"
VAR="${LAZYKV_VAR:-var}"
mkdir -p "$VAR"
# The ports come from lazykvd's own reading of the config (-t), not a re-parse.
ports=$(bin/lazykvd -c "$CONFIG" -t | awk '/^port = / { print $3 }' | tr '\n' ' ')
root_flag=""
[ "$(id -u)" -eq 0 ] && root_flag="--allow-root"

parent=$PPID  # make, when started by `make run`
sync_pid="" kvd_pid=""
cleanup() {
  trap - INT TERM HUP EXIT
  echo "lazykv: stopping" >&2
  [ -n "$kvd_pid" ] && kill -TERM "$kvd_pid" 2>/dev/null && wait "$kvd_pid" 2>/dev/null || true
  [ -n "$sync_pid" ] && kill -TERM "$sync_pid" 2>/dev/null && wait "$sync_pid" 2>/dev/null || true
  tools/cluster.sh stop "$VAR/cluster"
}
trap cleanup INT TERM HUP EXIT

# shellcheck disable=SC2086
tools/cluster.sh start "$VAR/cluster" $ports
bin/lazykv-admin -c "$CONFIG" init
bin/lazykv-sync -c "$CONFIG" --loop 5 >>"$VAR/sync.log" 2>&1 &
sync_pid=$!
echo "lazykv: sync running (log: $VAR/sync.log); Ctrl-C stops everything" >&2
echo "lazykv: requests logged to the access_log of $CONFIG (var/access.log)" >&2
bin/lazykvd -c "$CONFIG" $root_flag &
kvd_pid=$!
# Until lazykvd exits, or whoever started this script does: Ctrl-C in a
# terminal reaches every process of the group, but a signal sent to make
# alone would leave this script and its servers running.
while kill -0 "$kvd_pid" 2>/dev/null && kill -0 "$parent" 2>/dev/null; do
  sleep 1 & wait $! || true
done
wait "$kvd_pid" 2>/dev/null || true
