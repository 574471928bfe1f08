#!/usr/bin/env bash
# Every man page renders without a groff warning (all warnings on) on an 80-column terminal:
# no raw non-ASCII input (special characters are written \[uXXXX]), no table wider than the line.
set -euo pipefail
command -v groff >/dev/null || { echo "groff is not installed"; exit 77; }
status=0
for page in "${DSK_SOURCE_DIR:?}"/man/*.[157]; do
  # man(1) sets the line length to the terminal's width less 2: 78n at 80 columns.
  warnings=$(groff -t -man -Tutf8 -ww -z -rLL=78n "$page" 2>&1)
  if [ -n "$warnings" ]; then
    echo "FAIL: ${page##*/}: $warnings" >&2
    status=1
  fi
done
[ "$status" = 0 ] && echo "man pages: ok"
exit "$status"
