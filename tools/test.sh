#!/usr/bin/env bash
# Runs every test: the unit tests (Check), then the integration tests, which
# start their own throwaway cluster in test mode on free ports and tear it
# down whatever happens. Exits non-zero on any failure.
#
# usage: tools/test.sh BUILD_DIR BIN_DIR
set -uo pipefail
build="${1:-build}" bin="${2:-bin}"
export LAZYKV_ENV=test

status=0
echo "== unit tests"
CK_FORK=yes "$build/unit_tests" || status=1
echo "== integration tests"
python3 tests/integration/run.py --bin "$bin" ${LAZYKV_TESTS:+--only "$LAZYKV_TESTS"} ${LAZYKV_REPEAT:+--repeat "$LAZYKV_REPEAT"} || status=1
exit $status
