#!/usr/bin/env bash
# Installs what the tests need where it can (see docs/TESTING.md). Each step is
# a script beside this one that is safe to run again and exits 0, with one
# line saying why, when it cannot install (not root). Tests that need a
# missing dependency then skip with a reason, or fail under CI=true.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

steps=(
	install-pgvector.sh  # PostgreSQL 15 + pgvector, for shared/pgtest
	install-chromium.sh  # Debian's Chromium, for the browser tests
	install-node22.sh    # Node 22 + MCP Inspector, conformance, TypeScript SDK (under .tools/)
)

for step in "${steps[@]}"; do
	bash "$here/$step"
done
