# Roster: build, generate, test and run.
IMG ?= roster:dev
LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HELM_VERSION ?= v4.3.2
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
# kubectl from PATH, else the one hack/setup-envtest.sh builds with the control plane.
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || echo $(LOCALBIN)/k8s/kubectl)
GO_TEST_FLAGS ?= -timeout 30m

.PHONY: all
all: build

.PHONY: demo
demo: envtest ## See Roster work: a control plane, the operator, two apps, 50 people (ARGS=--once to exit).
	go run ./hack/demo $(ARGS)

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Write the CRDs, RBAC role and Argo CD health checks from their sources.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases
	go run ./hack/argocd

.PHONY: generate
generate: controller-gen ## Write the DeepCopy methods of the API types.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: docs
docs: manifests ## Write docs/reference.md from the CRDs.
	go run ./hack/crd-docs

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: vet golangci-lint ## Check formatting, run go vet, golangci-lint (.golangci.yml) and the API conventions check.
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GOLANGCI_LINT) run --allow-parallel-runners ./...
	go run ./hack/apilint ./api/v1alpha1

.PHONY: envtest
envtest: ## Build kube-apiserver, etcd and kubectl from Go modules into the cache and bin/k8s.
	hack/setup-envtest.sh >/dev/null

.PHONY: test-tools
test-tools: ## Install the programs tests start as real peers (Node.js for SCIMMY), if missing.
	hack/install-test-tools.sh

# Fuzzing is bounded by a count of executions, not a duration: a duration's deadline
# can race Go's fuzzing coordinator and fail a run that found nothing (go.dev/issue/75804).
FUZZ_TIME ?= 150000x

.PHONY: test
test: manifests generate lint envtest test-tools helm ## Run every test against a real kube-apiserver and etcd, then fuzz.
	HELM=$(HELM) KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" go test $(GO_TEST_FLAGS) ./...
	$(MAKE) fuzz

.PHONY: fuzz
fuzz: ## Fuzz the SCIM filter parser, the PATCH applier and the engines' packed accounts for FUZZ_TIME executions each.
	go test ./connectors/scim -run '^$$' -fuzz '^FuzzParseFilter$$' -fuzztime $(FUZZ_TIME)
	go test ./connectors/scim -run '^$$' -fuzz '^FuzzApplyPatch$$' -fuzztime $(FUZZ_TIME)
	go test ./controllers/engine -run '^$$' -fuzz '^FuzzPackedAttributes$$' -fuzztime $(FUZZ_TIME)

.PHONY: reliability
reliability: envtest test-tools ## Kill, fail over and starve the operator at full size: crashes, failover, faulty apps and sources, API server, inbound SCIM, a 15-minute soak (test/reliability).
	ROSTER_RELIABILITY=full KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" go test ./test/reliability -count=1 -timeout 80m -v

.PHONY: bench
bench: envtest test-tools ## Measure convergence, requests per account, rate budget, directory sync and memory; write bench/results.json (ARGS=--quick for 200 users; ARGS=--scale for cost from 1,000 to 50,000 people, bench/scale.json).
	go run ./hack/bench $(ARGS)

.PHONY: verify
verify: manifests generate docs ## Fail if generated files (deepcopy, CRDs, RBAC, Argo CD checks, docs reference) differ from what is committed.
	@git diff --exit-code -- api config docs || { echo "generated files are stale: run make manifests generate docs and commit"; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- api config docs); \
	if [ -n "$$untracked" ]; then echo "generated files are not committed: $$untracked"; exit 1; fi

##@ Build

.PHONY: build
build: ## Build the operator into bin/roster and the kubectl plugin into bin/kubectl-roster.
	go build -trimpath -o $(LOCALBIN)/roster .
	go build -trimpath -o $(LOCALBIN)/kubectl-roster ./cmd/kubectl-roster

.PHONY: run
run: ## Run the operator against the cluster in the current kubeconfig.
	go run . --metrics-bind-address=:8080 --metrics-secure=false

.PHONY: docker-build
docker-build: ## Build the container image $(IMG).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: kubectl ## Install the CRDs into the cluster in the current kubeconfig.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: kubectl ## Remove the CRDs (and every Roster object) from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: kubectl ## Deploy the operator with image $(IMG).
	$(KUBECTL) kustomize config/default | sed 's|image: roster:dev|image: $(IMG)|' | $(KUBECTL) apply --server-side -f -

.PHONY: krew
krew: ## Package kubectl-roster for krew into dist/krew: an archive per platform and the plugin manifest (VERSION=, URL= where they are published).
	go run ./hack/krew -version $(or $(VERSION),v0.0.0) -url "$(URL)" -out dist/krew

.PHONY: build-installer
build-installer: manifests kubectl ## Write dist/install.yaml: everything, for kubectl apply -f.
	mkdir -p dist
	$(KUBECTL) kustomize config/default | sed 's|image: roster:dev|image: $(IMG)|' > dist/install.yaml

.PHONY: undeploy
undeploy: kubectl ## Remove the operator and its CRDs.
	$(KUBECTL) delete --ignore-not-found -k config/default

##@ Tools

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT)
$(GOLANGCI_LINT):
	GOBIN=$(LOCALBIN)/golangci-lint.tmp go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint.tmp/golangci-lint $@ && rmdir $(LOCALBIN)/golangci-lint.tmp

.PHONY: helm
helm: $(HELM) ## Build Helm from its Go module into bin/ (the chart's tests use it).
$(HELM):
	GOBIN=$(LOCALBIN)/helm.tmp go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/helm.tmp/helm $@ && rmdir $(LOCALBIN)/helm.tmp

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: kubectl
kubectl:
	@[ -x "$(KUBECTL)" ] || hack/setup-envtest.sh >/dev/null
