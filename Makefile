# Weft. `make help` lists the targets.
SHELL := /usr/bin/env bash
export GOTOOLCHAIN := local
GO       ?= go
BIN      := $(CURDIR)/bin
FUZZTIME ?= 30s
# Binaries built by `make build`.
CMDS     := ./control-plane/cmd/... ./node-proxy/cmd/... ./weftctl ./tests/apps/echo/cmd/weft-echo

.PHONY: help tools build generate verify-generated lint test test-unit test-integration kube-binaries cluster-binaries cluster-up cluster-down e2e-cluster conformance images fuzz bench bench-proxy demo demo-identity clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

tools: ## Install what building and testing need (apt packages, pinned Go tools), idempotently
	@hack/tools.sh

build: ## Build every binary into bin/
	$(GO) build -o $(BIN)/ $(CMDS)

generate: tools ## Regenerate protos, deepcopy, CRD YAML (charts/weft/crds) and the Gateway API CRD copies
	hack/generate.sh

verify-generated: tools ## Fail when generated files are stale
	hack/verify-generated.sh

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	  if [[ -n "$$out" ]]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

kube-binaries: ## Build (once, cached outside the repo) kube-apiserver and etcd for integration tests
	@tests/kube/build-binaries.sh >/dev/null

cluster-binaries: ## Build (once, cached outside the repo) a whole single-node Kubernetes for the end-to-end suite (first time: 15-20 min)
	@tests/cluster/build-binaries.sh >/dev/null

cluster-up: tools cluster-binaries ## A single-node Kubernetes on this machine with Weft's images, in the foreground until Ctrl-C (root, Linux)
	$(GO) build -o $(BIN)/weft-cluster ./tests/cluster/cmd/weft-cluster
	WEFT_CLUSTER_BIN=$$(tests/cluster/build-binaries.sh) $(BIN)/weft-cluster up

cluster-down: ## Clean up after a cluster-up that was killed
	$(GO) build -o $(BIN)/weft-cluster ./tests/cluster/cmd/weft-cluster
	WEFT_CLUSTER_BIN=$$(tests/cluster/build-binaries.sh) $(BIN)/weft-cluster down

e2e-cluster: tools cluster-binaries ## Only the end-to-end suite on a real single-node Kubernetes (root, Linux)
	WEFT_CLUSTER_BIN=$$(tests/cluster/build-binaries.sh) $(GO) test -count=1 -timeout 30m -v ./tests/cluster/...

conformance: tools cluster-binaries ## Gateway API conformance (MESH-HTTP) on a real single-node Kubernetes: a report, not a gate (root, Linux)
	cd tests/conformance && WEFT_CLUSTER_BIN=$$(../cluster/build-binaries.sh) $(GO) test -count=1 -timeout 60m -v ./...

images: ## Build the container images (control plane, node proxy, echo, pause) as tarballs in bin/images/
	$(GO) run ./tests/cluster/cmd/weft-images -out $(BIN)/images

test: tools lint verify-generated kube-binaries cluster-binaries ## Everything: lint, generated files, unit (race), fuzz seeds, integration
	@if [[ $$(id -u) -ne 0 || $$(uname -s) != Linux ]]; then \
	  echo "!!! NOT ROOT ON LINUX: the network-namespace and end-to-end tests will SKIP (go test -v shows which)"; fi
	WEFT_KUBE_BIN=$$(tests/kube/build-binaries.sh) WEFT_CLUSTER_BIN=$$(tests/cluster/build-binaries.sh) \
	  $(GO) test -race -count=1 -timeout 30m ./...

test-unit: ## Only the packages whose tests need no kube-apiserver, with the race detector
	$(GO) test -race -count=1 $$($(GO) list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... \
	  | grep -v 'weft/tests/kube' | cut -d' ' -f1)

fuzz: ## Run every fuzz target for FUZZTIME (default 30s) each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

bench: ## Go benchmarks of the hot paths
	$(GO) test -run '^$$' -bench . -benchmem ./certs/... ./control-plane/internal/translate/ ./node-proxy/internal/redirect/ ./node-proxy/netns/ ./node-proxy/internal/tunnel/ ./node-proxy/internal/meshcfg/ ./node-proxy/internal/l7/...

bench-proxy: build ## Node proxy vs direct in the sandbox: rps, latency, new conns, bulk, CPU (root; ARGS="-backend nginx")
	$(GO) run ./tests/bench/proxy -bin $(BIN) $(ARGS)

demo: tools build ## Run the whole mesh in network namespaces and walk through it (root, Linux); WEFT_DEMO_STAY=1 keeps it up
	hack/demo.sh

demo-identity: build ## The identity demo alone: certificates issued and refused in local mode (no root)
	hack/demo-identity.sh

clean: ## Remove bin/
	rm -rf $(BIN)
