# Makefile for the Mesos Docker executor. `make help` lists the targets.

GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# Binaries are static so that agents can fetch and run them anywhere; tests
# need cgo for -race.
STATIC    := CGO_ENABLED=0
PKGS      := ./...

.DEFAULT_GOAL := help
.PHONY: help build test test-unit bench bench-scale demo lint fmt check clean fuzz registry cni-plugins

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/executor and the demo/test task binary bin/taskbin (static)
	$(STATIC) $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/executor ./cmd/executor
	$(STATIC) $(GO) build -trimpath -o $(BIN)/taskbin ./test/taskbin

test: build $(BIN)/promtool $(BIN)/docker-registry cni-plugins ## every test, unit and end-to-end against the real Docker Engine, with -race
	PROMTOOL=$(CURDIR)/$(BIN)/promtool DOCKER_REGISTRY=$(CURDIR)/$(BIN)/docker-registry $(GO) test -race -count=1 -timeout 25m $$($(GO) list $(PKGS) | grep -v /test/leak)
	@# The leak test keeps 50 containers starting for minutes: alone, so that
	@# it neither saturates the daemon under the other suites' timing nor is
	@# slowed by them.
	$(GO) test -race -count=1 -timeout 25m ./test/leak/

# DOCKER_HOST points nowhere so that a Docker test missing its -short gate
# cannot pass unnoticed: it skips (or, with CI=true, fails) instead of
# quietly using the daemon.
test-unit: ## the fast unit tests only (-short skips every Docker test)
	DOCKER_HOST=unix:///nonexistent/make-test-unit-uses-no-docker.sock $(GO) test -race -short -count=1 $(PKGS)

# BenchmarkScale runs MDX_BENCH_TASKS short tasks (default 20000: more than an
# hour on a 2-core machine), hence the long timeout.
BENCH_TIMEOUT ?= 4h
bench: build cni-plugins ## benchmarks against the raw Docker API, printing ratios, then the 20,000-task run (MDX_BENCH_TASKS)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout $(BENCH_TIMEOUT) ./test/bench/
	$(GO) test -run '^$$' -bench OrphanReap -benchtime 1x ./reaper/

bench-scale: build ## only the many-short-tasks run: MDX_BENCH_TASKS (default 20000) through one executor
	$(GO) test -run '^$$' -bench '^BenchmarkScale$$' -benchtime 1x -timeout $(BENCH_TIMEOUT) ./test/bench/

FUZZTIME ?= 2m
fuzz: ## run every Go fuzz target for FUZZTIME each (default 2m; FUZZTIME=10m for a long run)
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for fn in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$fn ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

demo: build ## run example tasks on the built-in local agent and real Docker
	./$(BIN)/executor demo --task-binary $(BIN)/taskbin

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

check: lint test ## lint and test

# promtool (to check /metrics) comes from Debian's prometheus package. Only the
# binary is unpacked: installing the package would also start a Prometheus
# server on the machine.
$(BIN)/promtool:
	@mkdir -p $(BIN)/.deb
	cd $(BIN)/.deb && (apt-get download prometheus >/dev/null 2>&1 || (apt-get update -qq && apt-get download prometheus))
	dpkg-deb -x $$(ls $(BIN)/.deb/prometheus_*.deb | head -1) $(BIN)/.deb/root
	cp $(BIN)/.deb/root/usr/bin/promtool $@
	rm -rf $(BIN)/.deb
	$@ --version | head -1

# The image registry the registry tests (and `make registry`) run comes from
# Debian's docker-registry package. As for promtool, only the binary is
# unpacked: installing the package would start a registry service on :5000.
$(BIN)/docker-registry:
	@mkdir -p $(BIN)/.deb-registry
	cd $(BIN)/.deb-registry && (apt-get download docker-registry >/dev/null 2>&1 || (apt-get update -qq && apt-get download docker-registry))
	dpkg-deb -x $$(ls $(BIN)/.deb-registry/docker-registry_*.deb | head -1) $(BIN)/.deb-registry/root
	cp $(BIN)/.deb-registry/root/usr/bin/docker-registry $@
	rm -rf $(BIN)/.deb-registry
	$@ --version

LOCAL_REGISTRY_PORT ?= 5000
LOCAL_REGISTRY_DIR  ?= $(BIN)/registry
registry: $(BIN)/docker-registry ## run a local registry on 127.0.0.1:$(LOCAL_REGISTRY_PORT) (user mdx, password in $(LOCAL_REGISTRY_DIR)/password) until Ctrl-C
	@mkdir -p $(LOCAL_REGISTRY_DIR)
	$(GO) run ./test/registry -bin $(BIN)/docker-registry -dir $(LOCAL_REGISTRY_DIR) -addr 127.0.0.1:$(LOCAL_REGISTRY_PORT)

# The CNI reference plugins (bridge, host-local, vlan, macvlan, firewall, ...)
# land in /usr/lib/cni, the policy's default cni-bin-dir; the cni, hooks and
# gate tests run them for real, and look at links with iproute2's ip.
CNI_PLUGINS := /usr/lib/cni/bridge
CNI_DEBS    := containernetworking-plugins iproute2
cni-plugins: ## install Debian's containernetworking-plugins (and iproute2) if missing
	@{ test -x $(CNI_PLUGINS) && command -v ip >/dev/null; } || { \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CNI_DEBS) >/dev/null 2>&1 || \
	   (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CNI_DEBS))) && \
	  test -x $(CNI_PLUGINS); }

clean: ## remove build output
	rm -rf $(BIN)
