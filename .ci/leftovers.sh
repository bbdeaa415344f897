#!/usr/bin/env bash
# Fails when the tests left IPC objects or temporary files of ours on the machine.
set -uo pipefail
left=$( {
  ls /dev/shm 2>/dev/null | grep -i 'ipc-audit' ;
  [ -d /dev/mqueue ] && ls /dev/mqueue 2>/dev/null | grep -i 'ipc-audit' ;
  ls "${TMPDIR:-/tmp}" 2>/dev/null | grep -i 'ipc-audit' ;
  ipcs -q 2>/dev/null | awk '$1 ~ /^0x/' ;
  ipcs -m 2>/dev/null | awk '$1 ~ /^0x/' ;
  ipcs -s 2>/dev/null | awk '$1 ~ /^0x/' ;
} )
if [ -n "$left" ]; then
  echo "left behind by the tests:"
  echo "$left"
  exit 1
fi
echo "nothing left in /dev/shm, /dev/mqueue, ${TMPDIR:-/tmp} or ipcs"
