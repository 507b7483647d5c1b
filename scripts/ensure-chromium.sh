#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the browser test of the live-ops page
# (tests/web/test_page.py). CI runs as root with apt, so there it is installed (quietly,
# non-interactively); anywhere else this only says why it cannot, and exits 0 so the test skips
# with that reason instead of the whole run failing.
set -u

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "ensure-chromium: $CHROMIUM missing and not root: cannot apt-get install chromium" \
         "(the browser test will skip)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: $CHROMIUM missing and no apt-get on this machine" \
         "(the browser test will skip)" >&2
    exit 0
fi

# fonts-wqy-microhei (5 MB): the page's Chinese team labels render as glyphs, not boxes, in the
# screenshot; the ops room's own browsers have CJK fonts already.
echo "ensure-chromium: installing Debian's chromium for the browser test" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if { apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei; } >"$log" 2>&1
then
    rm -f "$log"
    if [ -x "$CHROMIUM" ]; then
        exit 0
    fi
    echo "ensure-chromium: apt-get installed chromium but $CHROMIUM is still missing" >&2
else
    echo "ensure-chromium: apt-get install chromium failed (the browser test will skip):" >&2
    tail -n 5 "$log" >&2
    rm -f "$log"
fi
exit 0
