# Picard: make run starts both services on the embedded default; make test
# installs what the tests need (when root) and runs every test of every module.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

MODULES := shared mcpserver webclient scripts
PKGS := ./shared/... ./mcpserver/... ./webclient/... ./scripts/...
GO_TEST_FLAGS ?= -count=1 -timeout 30m
BENCH ?= .
BENCHTIME ?= 1x

.PHONY: run build test test-deps lint bench migrate clean

run: build
	bash scripts/run-dev.sh

build:
	mkdir -p bin
	go build -o bin/ ./mcpserver/cmd/mcpserver ./webclient/cmd/webclient

test-deps:
	@if [ "$$(id -u)" = 0 ]; then bash scripts/install-test-deps.sh; \
	else echo "make test: not root, so Postgres, pgvector and Chromium are not installed; tests that need them skip"; fi

# Every Go test of every module, then the integration testers against a
# multi-process stack (scripts/stack.sh: two Postgres clusters, both
# binaries), which is how CI proves a real deployment works.
test: test-deps
	go test -json $(GO_TEST_FLAGS) $(PKGS) | go run ./scripts/testreport
	$(MAKE) --no-print-directory test-stack

lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet $(PKGS)
	for m in $(MODULES); do (cd $$m && GOWORK=off go build ./... && GOWORK=off go vet ./...); done
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

bench:
	go test -run='^$$' -bench='$(BENCH)' -benchtime=$(BENCHTIME) -benchmem $(PKGS)

migrate: build
	bin/mcpserver migrate
	bin/webclient migrate

clean:
	rm -rf bin

# The four-part stack of docker-compose.yml without Docker (two local
# Postgres clusters, both binaries); see scripts/stack.sh.
.PHONY: stack stack-down test-stack

stack:
	bash scripts/stack.sh up

stack-down:
	bash scripts/stack.sh down

# stack, both integration testers against it, stack-down (always).
test-stack:
	bash scripts/stack.sh test

# MCP tools from npm (Node 22, MCP Inspector, conformance suite, TypeScript
# SDK; scripts/install-node22.sh puts them under .tools/). These targets
# install them first and fail, rather than skip, when they are missing. The
# same Go tests also run in `make test` (they skip there without the tools,
# and fail under CI=true). See docs/TESTING.md.
.PHONY: node-tools test-inspector test-conformance test-ts-sdk

NODE_TOOLS_CHECK = test -x .tools/node22/node_modules/.bin/node && test -f .tools/mcp/.installed && test -f .tools/mcp-auth/.installed \
	|| { echo "Node 22 and the MCP tools could not be installed under .tools/ (see scripts/install-node22.sh)"; exit 1; }

node-tools:
	bash scripts/install-node22.sh
	@$(NODE_TOOLS_CHECK)

# MCP Inspector CLI against a real mcpserver: tools/list, submit_memory, query_memory.
test-inspector: node-tools
	go test -count=1 -v -run '^TestInspector$$' ./scripts/mcptools/

# The official conformance suite: its server scenarios against /mcp
# (stateless and stateful; baselines in mcpserver/internal/conformance/testdata),
# then the pre-release's authorization-server scenarios against a real mcpserver.
test-conformance: node-tools
	go test -count=1 -v -run '^TestServerScenarios$$' ./mcpserver/internal/conformance/
	go test -count=1 -v -run '^TestAuthorizationConformance$$' ./scripts/mcptools/

# The TypeScript SDK runs the whole OAuth flow against a real mcpserver.
test-ts-sdk: node-tools
	go test -count=1 -v -run '^TestTypeScriptSDKOAuth$$' ./scripts/mcptools/
