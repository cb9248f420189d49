# node-healer — `make demo` runs the pipeline locally, `make test` runs every test layer.
SHELL := /bin/bash
GO ?= go
TOOLS_BIN := $(CURDIR)/.cache/tools/bin
export NODE_HEALER_TOOLS := $(TOOLS_BIN)
export PATH := $(TOOLS_BIN):$(PATH)

.PHONY: all build deps tools test test-unit test-integration bench demo vet fmt image clean

all: build

build: ## Build the receiver into bin/
	@mkdir -p bin
	$(GO) build -o bin/ ./cmd/...

deps: ## Debian packages the tests and the demo need (redis-server, redis-tools): apt-get as root, else says what to install
	@scripts/deps.sh

tools: ## Build the pinned real components (etcd, kube-apiserver, kwok, ...) into .cache/tools/bin
	@scripts/tools.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

test-unit: ## Unit tests only (no external components)
	$(GO) test -short -count=1 ./...

test: deps tools vet ## Every test layer: unit, integration (redis, kube-apiserver, kwok)
	$(GO) test -count=1 -timeout 30m ./...

bench: deps tools ## Benchmarks (figures go to docs/benchmarks.md)
	@bench/bench.sh

SCENARIO ?= deadlock-hung

demo: deps tools build ## The pipeline on this machine, no cluster needed (SCENARIO=deadlock-hung|deadlock|readonly-fs|storm)
	@bin/demo -scenario=$(SCENARIO) $(DEMO_FLAGS)

image: ## Container image (needs a Docker engine)
	docker build -t node-healer:dev .

clean:
	rm -rf bin
