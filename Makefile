# skiff build and test entry points. `make run` and `make test` are the
# README's quick start; CI runs .ci/run, which installs what a fresh machine
# lacks and calls `make test`.

GO        ?= go
# libcontainer's namespace setup (nsenter) is C code.
export CGO_ENABLED := 1
BIN       := bin/skiff
PKG       := github.com/skiff/skiff
GIT_COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILD_DATE := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -s -w -X $(PKG)/pkg/version.GitCommit=$(GIT_COMMIT) -X $(PKG)/pkg/version.BuildDate=$(BUILD_DATE)
DATA_DIR  ?= /var/lib/skiff

.PHONY: all build run test vet unit e2e bench clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/skiff

# Start a single-node cluster in the foreground; kubectl with
# KUBECONFIG=$(DATA_DIR)/admin.kubeconfig (or `bin/skiff kubectl`) talks to it.
run: build
	$(BIN) server --data-dir $(DATA_DIR)

test: vet unit e2e

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 15m ./pkg/... ./cmd/...

# End-to-end tests start real clusters from bin/skiff in temp dirs and drive
# them with every installed kubectl.
e2e: build
	SKIFF_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 25m ./test/e2e/...

bench: build
	hack/bench/run.sh

clean:
	rm -rf bin
