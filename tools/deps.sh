#!/usr/bin/env bash
# Installs the Debian packages lazykv needs to build, run and test, when they
# are missing. As root it runs apt-get; otherwise it prints the exact command
# to run and fails, so nothing is half-installed behind the user's back.
#
# usage: tools/deps.sh [build|run|test|ci|bench]
set -euo pipefail

BUILD="gcc make pkg-config libmariadb-dev libmicrohttpd-dev libgnutls28-dev libiniparser-dev libjansson-dev libcurl4-openssl-dev"
SERVER="mariadb-server mariadb-client"
# mandoc: the man pages' lint; systemd (systemd-analyze, systemd-sysusers)
# and man-db: the installed units are verified, Documentation= pages included;
# prometheus: promtool on /metrics and the alert rules; chromium, fonts and
# tidy: the browser tests of the HTML view.
TEST="check python3 curl openssl prometheus chromium fonts-dejavu-core tidy mandoc systemd man-db"
CI="clang clang-tidy libclang-rt-14-dev cppcheck valgrind"
BENCH="wrk sysbench redis-server redis-tools webdis etcd-server gnuplot-nox curl"

case "${1:-test}" in
  build) want="$BUILD" ;;
  run)   want="$BUILD $SERVER" ;;
  test)  want="$BUILD $SERVER $TEST" ;;
  ci)    want="$BUILD $SERVER $TEST $CI" ;;
  bench) want="$BUILD $SERVER $TEST $BENCH" ;;
  *) echo "usage: $0 [build|run|test|ci|bench]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
  echo "lazykv: missing packages; run as root: $cmd" >&2
  exit 1
fi
echo "lazykv: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when apt has never fetched them.
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  apt-get update -qq
fi
apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
  apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null
}
