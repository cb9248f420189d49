# node-healer — `make demo` runs the pipeline locally, `make test` runs every test layer.
SHELL := /bin/bash
GO ?= go
TOOLS_BIN := $(CURDIR)/.cache/tools/bin
export NODE_HEALER_TOOLS := $(TOOLS_BIN)
export PATH := $(TOOLS_BIN):$(PATH)

.PHONY: all build deps tools test test-unit test-integration bench bench-scale demo vet fmt image clean

all: build

# Build information for --version and node_healer_build_info, set with -X in
# github.com/prometheus/common/version (override any of them: make build VERSION=v1.2.3).
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
REVISION   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH     ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILD_USER ?= $(shell whoami 2>/dev/null)@$(shell hostname 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)
VERSION_PKG := github.com/prometheus/common/version
LDFLAGS := -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Revision=$(REVISION) -X $(VERSION_PKG).Branch=$(BRANCH) \
	-X $(VERSION_PKG).BuildUser=$(BUILD_USER) -X $(VERSION_PKG).BuildDate=$(BUILD_DATE)
BIN ?= bin

build: ## Build the receiver (and the demo's tools) into bin/, with the build information above
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

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

bench-scale: deps tools ## Fleet scale (issue 16): 1,000 kwok nodes × 30 pods, 2 replicas; prints a table (SCALE_FLAGS=-nodes 200 …)
	@bench/scale.sh $(SCALE_FLAGS)

SCENARIO ?= deadlock-hung
BMC ?= redfish

demo: deps tools build ## The pipeline on this machine, no cluster needed (SCENARIO=deadlock-hung|deadlock|readonly-fs|storm, BMC=redfish|ipmi)
	@bin/demo -scenario=$(SCENARIO) -bmc=$(BMC) $(DEMO_FLAGS)

image: ## Container image (needs a Docker engine)
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) --build-arg BRANCH=$(BRANCH) \
		--build-arg BUILD_USER=$(BUILD_USER) --build-arg BUILD_DATE=$(BUILD_DATE) -t node-healer:dev .

clean:
	rm -rf bin
