#!/usr/bin/env bash
# `make lint`: static checks over src/.
#  1. SQL text is never built with printf-family calls: statements are
#     constant templates expanded only with the validated table or database
#     name (store_sql_expand), and request data only travels as bound
#     parameters. A printf-family call on a line that mentions SQL keywords
#     fails the check.
#  2. cppcheck, when installed (warnings, style and portability).
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
sql_printf=$(grep -nE '(s?n?printf|buf_printf|asprintf)\(.*"[^"]*\b(SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b' src/*.c || true)
if [ -n "$sql_printf" ]; then
  echo "lint: SQL text built with a printf-family call:" >&2
  echo "$sql_printf" >&2
  status=1
fi
if command -v cppcheck >/dev/null; then
  # --inline-suppr: any suppression sits next to its code, with its reason.
  cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 \
    --inline-suppr -I src -D__GNUC__ src/*.c || status=1
else
  echo "lint: cppcheck not installed; skipped" >&2
fi
[ $status -eq 0 ] && echo "lint: clean"
exit $status
