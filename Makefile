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
.PHONY: help build test test-unit bench demo lint fmt check clean fuzz

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/executor and the demo/test task binary bin/taskbin (static)
	$(STATIC) $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/executor ./cmd/executor
	$(STATIC) $(GO) build -trimpath -o $(BIN)/taskbin ./test/taskbin

test: build $(BIN)/promtool ## every test, unit and end-to-end against the real Docker Engine, with -race
	PROMTOOL=$(CURDIR)/$(BIN)/promtool $(GO) test -race -count=1 -timeout 25m $(PKGS)

test-unit: ## the fast unit tests only (-short skips the Docker end-to-end tests)
	$(GO) test -race -short -count=1 $(PKGS)

bench: build ## benchmarks against the raw Docker API, printing ratios
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/bench/

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

clean: ## remove build output
	rm -rf $(BIN)
