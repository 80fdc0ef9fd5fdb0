#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (chromedp finds /usr/bin/chromium).
# Safe to run again; it does nothing once /usr/bin/chromium exists.
set -euo pipefail

log() { printf 'install-chromium: %s\n' "$*"; }

if [[ -x /usr/bin/chromium ]]; then
	log "$(/usr/bin/chromium --version 2>/dev/null || echo chromium) is already installed"
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	log "not root, cannot install chromium; browser tests will skip (fail under CI=true)"
	exit 0
fi

log "apt-get update"
apt-get update -q >/dev/null
log "installing chromium"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
log "done: $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
