# Windows Machine Config Operator (openwmco). `make help` lists the targets.

K8S_VERSION ?= v1.37.2
# The release (semver, from the VERSION file) names the image everywhere:
# config/manager, make deploy/installer, the OLM bundle. VERSION, stamped
# into the binaries, says which commit they were built from.
RELEASE := $(shell cat VERSION)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMG ?= ghcr.io/openwmco/wmco:v$(RELEASE)
CONTROLPLANE_BIN := $(CURDIR)/bin/k8s/$(K8S_VERSION)
LDFLAGS := -X github.com/openwmco/wmco/pkg/version.Version=$(VERSION)

export GOTOOLCHAIN := local
export WMCO_CONTROLPLANE_BIN := $(CONTROLPLANE_BIN)

GO ?= go
CONTROLLER_GEN := $(GO) tool controller-gen
# golangci-lint is pinned by the tool directive of hack/tools/go.mod, a module
# of its own so its dependencies do not move the operator's. Built once into
# bin/, keyed by version (a few minutes cold).
GOLANGCI_LINT_VERSION := $(shell awk '$$1 == "github.com/golangci/golangci-lint/v2" { print $$2 }' hack/tools/go.mod)
GOLANGCI_LINT := $(CURDIR)/bin/golangci-lint-$(GOLANGCI_LINT_VERSION)
# kustomize, pinned the same way (hack/tools/go.mod), for deploy and installer.
KUSTOMIZE_VERSION := $(shell awk '$$1 == "sigs.k8s.io/kustomize/kustomize/v5" && $$2 ~ /^v/ { print $$2 }' hack/tools/go.mod)
KUSTOMIZE := $(CURDIR)/bin/kustomize-$(KUSTOMIZE_VERSION)
# actionlint (make lint-scripts), pinned by hack/tools/actionlint/go.mod (a
# module of its own: its YAML library conflicts with golangci-lint's).
ACTIONLINT_VERSION := $(shell awk '$$1 == "github.com/rhysd/actionlint" { print $$2 }' hack/tools/actionlint/go.mod)
ACTIONLINT := $(CURDIR)/bin/actionlint-$(ACTIONLINT_VERSION)
# kind, pinned by hack/kind/go.mod, whose tests check hack/kind/cluster.yaml
# against that version's config types (make e2e-kind-windows).
KIND_VERSION := $(shell awk '$$1 == "sigs.k8s.io/kind" && $$2 ~ /^v/ { print $$2 }' hack/kind/go.mod)
KIND := $(CURDIR)/bin/kind-$(KIND_VERSION)
# The flannel release whose kube-flannel.yml hack/kind/kube-flannel vendors.
FLANNEL_VERSION := $(shell sed -n 's|^ *image: ghcr.io/flannel-io/flannel:\(v[0-9.]*\)$$|\1|p' hack/kind/kube-flannel/kube-flannel.yml | head -1)
# Where make deploy installs the operator.
NAMESPACE ?= wmco-system
# Packages with tests; the timeout covers the integration suites.
TEST_FLAGS ?= -count=1 -timeout 20m
# How long make fuzz and make fuzz-short run each fuzz target.
FUZZTIME ?= 10m
FUZZ_SHORT_TIME ?= 10s
# The OLM bundle (make bundle): its version is VERSION's, semver; the CSV
# runs the operator image of that release. The oldest Kubernetes it installs
# on is the payload's minor (a kubelet may not be newer than the API server).
BUNDLE_VERSION ?= $(RELEASE)
BUNDLE_OPERATOR_IMG ?= $(IMG)
BUNDLE_IMG ?= ghcr.io/openwmco/wmco-bundle:v$(BUNDLE_VERSION)
BUNDLE_CHANNELS ?= candidate
BUNDLE_DEFAULT_CHANNEL ?= candidate
BUNDLE_MIN_KUBE_VERSION ?= $(patsubst v%,%,$(basename $(K8S_VERSION))).0
# The e2e suite (test/e2e, build tag e2e); a byoh run on real hosts needs a
# longer -timeout.
E2E_FLAGS ?= -count=1 -timeout 20m -v -ginkgo.v

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: ## Generate deepcopy code from the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: ## Generate CRDs and RBAC from the markers into config/.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=wmco-manager paths=./cmd/... paths=./controllers/... output:rbac:artifacts:config=config/rbac

.PHONY: fmt
fmt: ## Run gofmt on the tree.
	gofmt -s -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet for Linux and build every package for Windows.
	$(GO) vet ./...
	$(GO) vet -C hack/bundle ./...
	$(GO) vet -C hack/monitoring ./...
	$(GO) vet -C hack/kind ./...
	GOOS=windows $(GO) build ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (.golangci.yml) for linux and windows, test/e2e, hack/bundle, hack/monitoring and hack/kind included.
	$(GOLANGCI_LINT) run ./...
	GOOS=windows $(GOLANGCI_LINT) run ./...
	cd hack/bundle && $(GOLANGCI_LINT) run ./...
	cd hack/monitoring && $(GOLANGCI_LINT) run ./...
	cd hack/kind && $(GOLANGCI_LINT) run ./...

.PHONY: lint-scripts
lint-scripts: $(ACTIONLINT) ## Run actionlint on .github/workflows (shellcheck on their run: blocks included) and shellcheck on the shell scripts; needs shellcheck on PATH (Debian's; .ci/run installs it).
	@command -v shellcheck >/dev/null || { echo "shellcheck is not on PATH: apt-get install shellcheck" >&2; exit 1; }
	$(ACTIONLINT) -shellcheck "$$(command -v shellcheck)" .github/workflows/*.yaml
	shellcheck .ci/run hack/*.sh

$(ACTIONLINT):
	@mkdir -p $(@D)
	$(GO) build -C hack/tools/actionlint -o $@ github.com/rhysd/actionlint/cmd/actionlint

$(GOLANGCI_LINT):
	@mkdir -p $(@D)
	$(GO) build -C hack/tools -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

$(KIND):
	@mkdir -p $(@D)
	$(GO) build -C hack/kind -o $@ sigs.k8s.io/kind

$(KUSTOMIZE):
	@mkdir -p $(@D)
	$(GO) build -C hack/tools -o $@ sigs.k8s.io/kustomize/kustomize/v5

.PHONY: verify
verify: ## Fail when generated files or formatting drift from the sources, or lint finds anything.
	hack/verify.sh
	$(MAKE) --no-print-directory lint

##@ Build

.PHONY: build
build: operator wicd kubectl-wmco ## Build the operator (linux), the agent (windows) and the kubectl plugin.

.PHONY: operator
operator: ## Build bin/operator for linux.
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/operator ./cmd/operator

.PHONY: wicd
wicd: ## Build bin/wicd.exe for windows/amd64.
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/wicd.exe ./cmd/wicd

.PHONY: kubectl-wmco
kubectl-wmco: ## Build bin/kubectl-wmco, the kubectl plugin (kubectl wmco preflight|status|logs), for this machine; copy it onto PATH.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/kubectl-wmco ./cmd/kubectl-wmco

.PHONY: image
image: ## Build the operator image with the Windows payload of $(K8S_VERSION) in /payload (needs a container engine).
	docker build --build-arg VERSION=$(VERSION) --build-arg K8S_VERSION=$(K8S_VERSION) -t $(IMG) .

##@ Windows payload

# The payload check builds these through the payload recipe on every CI run.
PAYLOAD_CHECK_COMPONENTS ?= wicd,host-local
PAYLOAD_BUILD := $(GO) run ./hack/payload/build -k8s-version $(K8S_VERSION) -version $(VERSION)

.PHONY: payload
payload: ## Build the Windows payload into payload/$(K8S_VERSION)/ from pinned Go modules (about 20 min cold on 2 cores, 1 min warm); K8S_VERSION=v1.36.x builds an older set.
	$(PAYLOAD_BUILD)

.PHONY: payload-check
payload-check: payload-verify ## CI drift check: build $(PAYLOAD_CHECK_COMPONENTS) through the payload recipe into bin/payload-check/.
	$(PAYLOAD_BUILD) -out bin/payload-check -components $(PAYLOAD_CHECK_COMPONENTS)

.PHONY: payload-verify
payload-verify: ## Run go mod verify on every payload wrapper module (hack/payload/*/go.mod).
	$(PAYLOAD_BUILD) -verify-modules

##@ OLM bundle

.PHONY: bundle
bundle: ## Generate bundle/manifests, bundle/metadata and bundle.Dockerfile from config/ (hack/bundle; committed, verify checks drift).
	$(GO) run -C hack/bundle . -root $(CURDIR) -version $(BUNDLE_VERSION) -image $(BUNDLE_OPERATOR_IMG) \
		-channels $(BUNDLE_CHANNELS) -default-channel $(BUNDLE_DEFAULT_CHANNEL) -min-kube-version $(BUNDLE_MIN_KUBE_VERSION)

.PHONY: bundle-build
bundle-build: ## Build the bundle image (BUNDLE_IMG) from bundle.Dockerfile (needs a container engine).
	tar -c bundle.Dockerfile bundle/manifests bundle/metadata | docker build -f bundle.Dockerfile -t $(BUNDLE_IMG) -

.PHONY: bundle-push
bundle-push: ## Push the bundle image (BUNDLE_IMG).
	docker push $(BUNDLE_IMG)

##@ Deploy

DEPLOY := KUSTOMIZE=$(KUSTOMIZE) IMG=$(IMG) NAMESPACE=$(NAMESPACE) hack/deploy.sh

.PHONY: deploy
deploy: $(KUSTOMIZE) ## Install CRDs, RBAC and the operator (IMG) into NAMESPACE on the current kubectl context; DRY_RUN=server to try.
	$(DEPLOY) apply

.PHONY: undeploy
undeploy: $(KUSTOMIZE) ## Remove what deploy installed (refuses while WindowsInstances exist; FORCE=1).
	$(DEPLOY) delete

.PHONY: installer
installer: $(KUSTOMIZE) ## Render everything deploy installs, for IMG and NAMESPACE, into dist/install.yaml.
	@mkdir -p dist
	$(DEPLOY) render > dist/install.yaml
	@echo "dist/install.yaml: $(IMG) in namespace $(NAMESPACE)"

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Build the pinned kustomize into bin/.

.PHONY: kind
kind: $(KIND) ## Build the pinned kind (hack/kind/go.mod) into bin/.

# The recipe's settings, passed through from the environment (see the
# script's header and README "Try it on kind with Windows VMs").
.PHONY: e2e-kind-windows
e2e-kind-windows: $(KIND) $(KUSTOMIZE) ## Create a kind cluster with flannel, deploy the operator image and run the e2e suite against your Windows VMs (WINDOWS_HOSTS, SSH_KEY; needs docker). ARGS=--keep keeps the cluster.
	KIND=$(KIND) KUSTOMIZE=$(KUSTOMIZE) K8S_VERSION=$(K8S_VERSION) GO=$(GO) hack/e2e-kind-windows.sh $(ARGS)

##@ Demo

.PHONY: demo
demo: setup-envtest operator ## Local control plane + simulated hosts + operator; DEMO_HOSTS=2, DEMO_EXIT=1 to exit when Ready, DEMO_PAYLOAD=real|fake (default: real when built).
	$(GO) run ./hack/demo --operator bin/operator

##@ Test

.PHONY: setup-envtest
setup-envtest: ## Build etcd, kube-apiserver, kube-controller-manager, kubectl and kube-apiserver-as-<v> for APISERVER_REPORTED_VERSIONS (a relink) into bin/k8s/$(K8S_VERSION) (skipped when present).
	K8S_VERSION=$(K8S_VERSION) hack/setup-envtest.sh

.PHONY: test
test: setup-envtest $(KUSTOMIZE) ## Run unit and integration tests (local control plane, simulated hosts, the kustomize install), the bundle's validator tests, the monitoring tests and the kind configuration's (test-kind).
	$(GO) test $(TEST_FLAGS) ./...
	$(GO) test -C hack/bundle $(TEST_FLAGS) ./...
	$(MAKE) --no-print-directory test-monitoring
	$(MAKE) --no-print-directory test-kind

.PHONY: test-monitoring
test-monitoring: ## Run promtool's unit tests of config/prometheus/rules.yaml and check the Grafana dashboard's queries against the exported metric names (hack/monitoring; builds promtool once, a few minutes cold).
	$(GO) test -C hack/monitoring $(TEST_FLAGS) ./...

.PHONY: test-kind
test-kind: $(KUSTOMIZE) ## Check hack/kind/cluster.yaml with kind's config types against kube-flannel's net-conf.json (the overlay rendered by kustomize), and the vendored kube-flannel.yml against the flannel module of its version.
	@dir=$$($(GO) mod download -json github.com/flannel-io/flannel@$(FLANNEL_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	if [ ! -d "$$dir" ]; then echo "test-kind: go mod download github.com/flannel-io/flannel@$(FLANNEL_VERSION) failed" >&2; exit 1; fi; \
	echo "WMCO_FLANNEL_MODULE_DIR=$$dir go test -C hack/kind $(TEST_FLAGS) ./..."; \
	WMCO_KUSTOMIZE=$(KUSTOMIZE) WMCO_FLANNEL_MODULE_DIR="$$dir" $(GO) test -C hack/kind $(TEST_FLAGS) ./...

.PHONY: test-real-payload
test-real-payload: setup-envtest ## Join a simulated host with the payload make payload built (fails, not skips, when it is missing).
	WMCO_REAL_PAYLOAD=1 $(GO) test -count=1 -timeout 10m -run TestRealPayload -v ./test/localenv/

.PHONY: test-race
test-race: setup-envtest $(KUSTOMIZE) ## Run what make test runs, the module's tests with the race detector (about 26 min on 2 busy cores, controllers/instance 8 of them); CI runs it instead of make test.
	$(GO) test -race $(TEST_FLAGS) ./...
	# The bundle validator, the monitoring checks and the kind
	# configuration's (no concurrency of ours) without -race: the bundle's
	# operator-framework dependencies take about 10 min to build with it.
	$(GO) test -C hack/bundle $(TEST_FLAGS) ./...
	$(MAKE) --no-print-directory test-monitoring
	$(MAKE) --no-print-directory test-kind

.PHONY: fuzz
fuzz: ## Run every fuzz target (func FuzzX in the module's tests) for FUZZTIME each, one after the other (default 10m: 10 minutes per target, hours for all of them); FUZZ_MATCH (a regular expression on the names) runs a subset, FUZZ_JOBS=N runs N targets at once.
	GO=$(GO) hack/fuzz.sh $(FUZZTIME)

.PHONY: fuzz-short
fuzz-short: ## Run every fuzz target for FUZZ_SHORT_TIME each (default 10s), for CI.
	GO=$(GO) hack/fuzz.sh $(FUZZ_SHORT_TIME)

.PHONY: test-e2e
test-e2e: setup-envtest operator ## Run the e2e suite (test/e2e) on the local provider; WMCO_E2E_PROVIDER=byoh for a real cluster and hosts.
	$(GO) test -tags e2e ./test/e2e/... $(E2E_FLAGS)

.PHONY: test-faults
test-faults: setup-envtest operator ## Run the fault matrix (test/faults): each fault mid-join and mid-upgrade on simulated hosts, invariants checked throughout; prints the table.
	$(GO) test -tags faults -count=1 -v -timeout 15m ./test/faults/... -run TestFaultMatrix $(FAULTS_FLAGS)

.PHONY: soak
SOAK_DURATION ?= 30m
SOAK_SEED ?= 1
SOAK_HOSTS ?= 6
soak: setup-envtest operator ## Churn soak (test/soak, not in CI): SOAK_HOSTS hosts under a random schedule from SOAK_SEED for SOAK_DURATION (default 30m), invariants checked throughout; prints operations, violations, restarts, RSS and goroutines.
	$(GO) run ./test/soak --operator bin/operator --duration $(SOAK_DURATION) --seed $(SOAK_SEED) --hosts $(SOAK_HOSTS)

.PHONY: test-windows-api
test-windows-api: ## Run the agent's Windows backend under Wine (needs wine64 and gcc-mingw-w64-x86-64; about 1-2 min warm).
	WMCO_WINE_REQUIRED=1 $(GO) test -tags wine -count=1 -v -timeout 10m ./test/wine/...

##@ Benchmarks

.PHONY: bench
bench: setup-envtest operator ## Measure join time, idle cost, CSR approval latency and operator memory into docs/benchmarks.md (not a test; about 25 min on 2 cores); BENCH_ARGS adds flags, e.g. BENCH_ARGS="--cpuprofile --memprofile".
	$(GO) run ./test/bench --operator bin/operator --out docs/benchmarks.md $(BENCH_ARGS)
