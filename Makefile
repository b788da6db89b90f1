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
# The embedded kubectl reports the version of the k8s.io/kubectl module it
# is built from (v0.X.Y -> v1.X.Y), as a released kubectl does.
KUBECTL_MOD := $(shell $(GO) list -m -f '{{.Version}}' k8s.io/kubectl 2>/dev/null)
KUBECTL_VERSION := v1.$(patsubst v0.%,%,$(KUBECTL_MOD))
KUBECTL_MINOR := $(word 2,$(subst ., ,$(KUBECTL_VERSION)))
KUBE_VERSION_PKGS := k8s.io/component-base/version k8s.io/client-go/pkg/version
LDFLAGS   += $(foreach p,$(KUBE_VERSION_PKGS),-X $(p).gitVersion=$(KUBECTL_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=$(KUBECTL_MINOR) -X $(p).gitTreeState=clean -X $(p).buildDate=$(BUILD_DATE))
DATA_DIR  ?= /var/lib/skiff

.PHONY: all build run test check vet unit e2e bench conformance clean

all: build

# skiff-runtime (the node's CRI runtime, re-executed for every container)
# and skiff-agent (a worker node without the control plane) are built
# first and embedded into skiff, gzipped; see pkg/runtime/bundle.
BUNDLE := pkg/runtime/bundle

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/skiff-runtime ./cmd/skiff-runtime
	gzip -c -6 bin/skiff-runtime > $(BUNDLE)/skiff-runtime.gz
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/skiff-agent ./cmd/skiff-agent
	gzip -c -6 bin/skiff-agent > $(BUNDLE)/skiff-agent.gz
	$(GO) build -trimpath -tags skiffruntime,skiffagent -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/skiff

# Start a single-node cluster in the foreground; kubectl with
# KUBECONFIG=$(DATA_DIR)/admin.kubeconfig (or `bin/skiff kubectl`) talks to it.
run: build
	$(BIN) server --data-dir $(DATA_DIR)

test: check vet unit e2e

# The tracked tree holds no file over 5 MB (build outputs are ignored).
check:
	hack/check-tracked-sizes

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 15m ./pkg/... ./cmd/... ./test/imagebuild/... ./hack/...

# End-to-end tests start real clusters from bin/skiff in temp dirs and drive
# them with every installed kubectl.
e2e: build
	SKIFF_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 25m ./test/e2e/...

bench: build
	hack/bench/run.sh

# Kubernetes' own conformance suite against a throw-away cluster; see
# hack/conformance/README.md. SMOKE=1 runs only the specs known to pass;
# FOCUS=regexp picks specs; results go to hack/conformance/results/.
conformance: build
	SMOKE=$(SMOKE) FOCUS='$(FOCUS)' hack/conformance/run.sh

clean:
	rm -rf bin $(BUNDLE)/*.gz
