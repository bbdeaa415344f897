#!/usr/bin/env bash
# Fails when the tests left IPC objects or temporary files of ours on the machine.
# `--snapshot FILE` records what is there now; a later run with LEFTOVERS_BEFORE=FILE
# then reports only what appeared since (objects left by something that ran before
# CI, on a reused machine, are not this run's leak).
set -uo pipefail
list() {
  {
    ls /dev/shm 2>/dev/null | grep -i 'ipc-audit' | sed 's|^|/dev/shm/|'
    [ -d /dev/mqueue ] && ls /dev/mqueue 2>/dev/null | grep -i 'ipc-audit' | sed 's|^|/dev/mqueue/|'
    ls "${TMPDIR:-/tmp}" 2>/dev/null | grep -i 'ipc-audit' | sed "s|^|${TMPDIR:-/tmp}/|"
    ipcs -q 2>/dev/null | awk '$1 ~ /^0x/ {print "msg " $1 " " $2}'
    ipcs -m 2>/dev/null | awk '$1 ~ /^0x/ {print "shm " $1 " " $2}'
    ipcs -s 2>/dev/null | awk '$1 ~ /^0x/ {print "sem " $1 " " $2}'
  } | sort
}
if [ "${1:-}" = "--snapshot" ]; then
  list > "$2"
  exit 0
fi
left=$(list)
if [ -n "${LEFTOVERS_BEFORE:-}" ] && [ -f "$LEFTOVERS_BEFORE" ]; then
  before=$(cat "$LEFTOVERS_BEFORE")
  [ -n "$before" ] && printf 'there before this run (not counted):\n%s\n' "$before"
  left=$(comm -13 "$LEFTOVERS_BEFORE" <(printf '%s\n' "$left") | sed '/^$/d')
fi
if [ -n "$left" ]; then
  echo "left behind by the tests:"
  echo "$left"
  exit 1
fi
echo "nothing left in /dev/shm, /dev/mqueue, ${TMPDIR:-/tmp} or ipcs"
