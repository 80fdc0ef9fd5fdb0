#!/usr/bin/env bash
# Starts mcpserver (:8001) and then webclient (:8000) on the embedded
# default, and stops both on Ctrl-C. Used by `make run`.
set -euo pipefail
cd "$(dirname "$0")/.."

pids=()
stop() {
	trap - INT TERM
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
}
trap 'stop; exit 130' INT TERM

bin/mcpserver serve &
pids+=($!)

# The web client registers itself with mcpserver at start, so wait until
# mcpserver answers (at most 30 s) before starting it.
port="${MCP_SERVER_PORT:-8001}"
for _ in $(seq 1 300); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
	if ! kill -0 "${pids[0]}" 2>/dev/null; then echo "mcpserver exited during start-up" >&2; exit 1; fi
	sleep 0.1
done

bin/webclient serve &
pids+=($!)

# If either service exits on its own, stop the other and report it.
set +e
wait -n "${pids[@]}"
status=$?
stop
exit "$status"
