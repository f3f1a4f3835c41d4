#!/bin/sh
# Turns sql/schema.sql into a C array of statements (build/schema_sql.c), so
# lazykv-admin carries the schema it applies. Statements end with ';' at the
# end of a line; '--' comment lines and blank lines are dropped.
set -eu
in="$1"
echo "/* generated from $in by tools/embed_sql.sh: do not edit */"
echo "#include <stddef.h>"
echo "const char *const schema_sql[] = {"
awk '
  /^[ \t]*--/ || /^[ \t]*$/ { next }
  {
    line = $0
    sub(/[ \t]*--.*$/, "", line)
    gsub(/\\/, "\\\\", line); gsub(/"/, "\\\"", line)
    stmt = stmt line " "
    if (line ~ /;[ \t]*$/) {
      sub(/;[ \t]*$/, "", stmt)
      print "    \"" stmt "\","
      stmt = ""
    }
  }' "$in"
echo "    NULL"
echo "};"
