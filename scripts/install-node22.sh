#!/usr/bin/env bash
# Installs Node 22 and the MCP tools from npm that the MCP Inspector,
# conformance and TypeScript SDK tests use (see docs/TESTING.md), all under
# the repository's .tools/ (gitignored); nothing is installed system-wide.
#
#   .tools/node22  node@$NODE_VERSION from npm (the preinstalled Node 20 is too
#                  old for the MCP tools); its node_modules/.bin goes first in PATH
#   .tools/mcp     npm ci of scripts/mcp-tools/package{,-lock}.json: Inspector,
#                  conformance (server scenarios) and the TypeScript SDK
#   .tools/mcp-auth npm ci of scripts/mcp-tools/auth/: the conformance
#                  pre-release with the authorization-server scenarios
#
# Safe to run again: each part is skipped while its lock file is unchanged
# (a stamp records the installed lock's checksum). Without npm or the npm
# registry it exits 0 with one line saying why; the tests that need these
# tools then skip with a reason (and fail under CI=true).
set -euo pipefail

readonly NODE_VERSION=22.23.3

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=$repo/.tools
src=$repo/scripts/mcp-tools

log() { printf 'install-node22: %s\n' "$*"; }

if ! command -v npm >/dev/null 2>&1; then
	log "npm is not installed, cannot install Node 22 and the MCP tools; their tests will skip (fail under CI=true)"
	exit 0
fi

export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

# One install at a time: `make test` of several engineers (or CI jobs) may
# run this concurrently, and two npm runs in one prefix corrupt it.
mkdir -p "$tools"
exec 9>"$tools/.install-node22.lock"
if ! flock -w 600 9; then
	log "another install has held .tools/.install-node22.lock for 10 minutes; giving up"
	exit 0
fi

node22=$tools/node22/node_modules/.bin/node
if [[ -x $node22 && $("$node22" --version 2>/dev/null) == "v$NODE_VERSION" ]]; then
	log "node $("$node22" --version) is already installed in .tools/node22"
else
	log "installing node@$NODE_VERSION into .tools/node22"
	mkdir -p "$tools/node22"
	# node@22's preinstall script fetches the platform binary, so scripts stay on here.
	if ! npm install --prefix "$tools/node22" --no-save "node@$NODE_VERSION" >"$tools/node22.log" 2>&1 ||
		[[ $("$node22" --version 2>/dev/null) != "v$NODE_VERSION" ]]; then
		log "could not install node@$NODE_VERSION (see .tools/node22.log); the MCP tool tests will skip (fail under CI=true)"
		exit 0
	fi
	log "installed node $("$node22" --version)"
fi

# Node 22 first in PATH before npm resolves anything, or npm picks versions
# for Node 20 (RECIPES.md).
export PATH=$tools/node22/node_modules/.bin:$PATH

# install_locked DIR SRC: npm ci of SRC's package.json and lock into DIR,
# unless DIR already holds exactly that lock.
install_locked() {
	local dir=$1 from=$2 name
	name=$(basename "$dir")
	local sum
	sum=$(cat "$from/package.json" "$from/package-lock.json" | sha256sum | cut -d' ' -f1)
	if [[ -f $dir/.installed && $(cat "$dir/.installed") == "$sum" && -d $dir/node_modules ]]; then
		log "the MCP tools in .tools/$name are up to date"
		return 0
	fi
	log "npm ci of $(realpath --relative-to="$repo" "$from") into .tools/$name"
	mkdir -p "$dir"
	rm -f "$dir/.installed"
	cp "$from/package.json" "$from/package-lock.json" "$dir/"
	# --ignore-scripts: none of these packages needs an install script (the
	# Inspector's postinstall is a no-op outside its own source checkout).
	if ! npm ci --prefix "$dir" --ignore-scripts >"$tools/$name.log" 2>&1; then
		log "npm ci into .tools/$name failed (see .tools/$name.log); the MCP tool tests will skip (fail under CI=true)"
		return 1
	fi
	echo "$sum" >"$dir/.installed"
	log "installed: $(cd "$dir" && npm ls --depth=0 --parseable --long 2>/dev/null | sed -n 's/.*:\(@modelcontextprotocol[^:]*\).*/\1/p' | tr '\n' ' ')"
}

install_locked "$tools/mcp" "$src" || exit 0
install_locked "$tools/mcp-auth" "$src/auth" || exit 0
