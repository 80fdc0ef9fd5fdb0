# Picard: make run starts both services on the embedded default; make test
# installs what the tests need (when root) and runs every test of every module.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

MODULES := shared mcpserver webclient scripts
PKGS := ./shared/... ./mcpserver/... ./webclient/... ./scripts/...
GO_TEST_FLAGS ?= -count=1 -timeout 30m
BENCH ?= .
BENCHTIME ?= 1x

.PHONY: run build test test-deps lint bench bench-large loadtest migrate clean eval eval-locomo

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
test: test-deps lint
	go test -json $(GO_TEST_FLAGS) $(PKGS) | go run ./scripts/testreport
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME)
	$(MAKE) --no-print-directory test-stack

lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet $(PKGS)
	for m in $(MODULES); do (cd $$m && GOWORK=off go build ./... && GOWORK=off go vet ./...); done
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)
	@# gosec: every finding is fixed or justified inline (#nosec G… -- reason).
	@# G104 (unchecked errors) is excluded: it only ever flags best-effort
	@# cleanup (Close on an error path, removing a temporary directory).
	go run github.com/securego/gosec/v2/cmd/gosec@v2.30.0 -quiet -exclude-generated -exclude=G104 $(PKGS)

# Every Go fuzz target for FUZZTIME each (scripts/fuzz.sh); make test runs
# each for TEST_FUZZTIME. Crashers land in the package's testdata/fuzz/.
.PHONY: fuzz
FUZZTIME ?= 1m
TEST_FUZZTIME ?= 5s
fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# Benchmarks report ratios against baselines measured in the same run
# (docs/performance.md); make bench runs the short forms, bench-large the
# sizes of the performance goals (100k memories; Postgres when available).
bench:
	go test -run='^$$' -bench='$(BENCH)' -benchtime=$(BENCHTIME) -benchmem $(PKGS)

BENCH_LARGE ?= QueryMemory|SubmitMemories|ReadToolVsBareSDK|Search|Insert
bench-large:
	PICARD_BENCH_LARGE=1 go test -run='^$$' -bench='$(BENCH_LARGE)' -benchtime=20x -timeout 3h \
		./mcpserver/internal/mcp/ ./mcpserver/internal/httpapi/ ./mcpserver/internal/store/

# The load test: 200 MCP clients for 60 s against a server it starts (a
# child process, SQLite); its short form (TestShortLoad) runs in make test.
LOADTEST_FLAGS ?= -clients 200 -duration 60s
loadtest:
	go run ./scripts/loadtest $(LOADTEST_FLAGS)

# Retrieval quality: stores the conversations of scripts/eval/testdata through
# a real in-process mcpserver and reports recall@k and MRR of query_memory in
# each mode next to an Okapi BM25 baseline (docs/retrieval.md). EVAL_FLAGS
# passes flags, e.g. EVAL_FLAGS='-database-url postgres://…'.
eval:
	go run ./scripts/eval $(EVAL_FLAGS)

# The same on the public benchmark LoCoMo (docs/retrieval.md), which is not
# checked in (CC BY-NC 4.0): LOCOMO names its data/locomo10.json, or a
# directory of its per-conversation files; it is converted into a temporary
# file by scripts/eval/locomo.
eval-locomo:
	@if [ -z '$(LOCOMO)' ]; then \
		echo "make eval-locomo: set LOCOMO to LoCoMo's data (CC BY-NC 4.0, so not in this repository):"; \
		echo "  git clone https://github.com/snap-research/locomo"; \
		echo "  make eval-locomo LOCOMO=locomo/data/locomo10.json"; \
		echo "(a clone with only data/locomo10.zip: unzip it and use LOCOMO=data/multimodal_dialog/locomo10_v2)"; \
		exit 1; fi
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
		go run ./scripts/eval/locomo -in '$(LOCOMO)' -out "$$tmp/locomo10.json"; \
		go run ./scripts/eval -data "$$tmp/locomo10.json" $(EVAL_FLAGS)

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
