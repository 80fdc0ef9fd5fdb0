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

test: test-deps
	go test -json $(GO_TEST_FLAGS) $(PKGS) | go run ./scripts/testreport

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
