#!/usr/bin/env bash
# Opens a report page in headless Chromium (Debian package `chromium`) and fails when the
# page logs anything to the console (the page has no script: any message is an error) or
# does not render its table; optionally takes a screenshot. A control runs first: a page
# that logs a console error must be caught, or the check proves nothing.
#
# usage: scripts/browser-check.sh DIR/index.html [SCREENSHOT.png]
set -euo pipefail
page=$(realpath "$1")
shot=${2:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

chrome() {
  local profile
  profile=$(mktemp -d -p "$work")
  timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
    --enable-logging=stderr --v=0 "$@" 2>&1
}
# Console messages, as Chromium logs them: `[pid:tid:time:INFO:CONSOLE:line] "text", source: ...`.
console() { grep -E ':CONSOLE[:(]' || true; }

printf '<!DOCTYPE html><p>control</p><script>console.error("control"); nosuch();</script>' >"$work/control.html"
if [ -z "$(chrome --dump-dom "file://$work/control.html" | console)" ]; then
  echo "browser check: the control page's console error was not seen; the check cannot fail"
  exit 1
fi

out=$(chrome --dump-dom "file://$page")
messages=$(console <<<"$out")
if [ -n "$messages" ]; then
  echo "browser check: $page logged to the console:"
  echo "$messages"
  exit 1
fi
if ! grep -q '<table id="table">' <<<"$out"; then
  echo "browser check: $page did not render its comparison table"
  exit 1
fi
echo "browser check: $page opened in $(chromium --version 2>/dev/null) with no console message"

if [ -n "$shot" ]; then
  messages=$(chrome --screenshot="$shot" --window-size=1400,3000 "file://$page" | console)
  if [ -n "$messages" ] || [ ! -s "$shot" ]; then
    echo "browser check: screenshot of $page failed: $messages"
    exit 1
  fi
  echo "browser check: screenshot in $shot"
fi
