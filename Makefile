# gpuledger — build, test, benchmark and demo targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/gpuledger
export CGO_CFLAGS ?= -Wno-deprecated-declarations

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BRANCH   ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
VPKG := github.com/prometheus/common/version
LDFLAGS := -X $(VPKG).Version=$(VERSION) -X $(VPKG).Revision=$(REVISION) -X $(VPKG).Branch=$(BRANCH)

# Where the public traces are read in place (never copied into the repository).
TRACE_DIR ?= $(abspath ../shared/data)
export TRACE_DIR

.PHONY: all build test unit lint fuzz bench demo generate check-generated clean

all: build

## build: bin/gpuledger (the suite) and bin/gpuledger-exporter (the exporter
## alone: the same flags as `gpuledger exporter`, a smaller binary).
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gpuledger
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/gpuledger-exporter ./cmd/gpuledger-exporter

## test: lint, build and run every test (golden files, promtool checks and the
## trace tests included; the trace tests skip with a message without TRACE_DIR).
test: lint build unit fuzz

unit:
	$(GO) test -count=1 -p 2 -timeout 14m ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

## fuzz: a bounded run of every parser of untrusted input (the seed corpora
## in testdata/ also run in unit). FUZZTIME per target; a finding fails the
## run and is written under the package's testdata/fuzz/ for the next test; a
## failure that wrote no input (the engine under load) is tried once more.
FUZZTIME ?= 5s
FUZZ_TARGETS := \
	exporters/dcgm:FuzzParse \
	exporters/fpga:FuzzSysfsValue \
	exporters/fpga:FuzzXbutilJSON \
	exporters/kubelet:FuzzParseDeviceID \
	exporters/nvml:FuzzProfileFromName \
	exporters/kube:FuzzClusterQueueQuotas \
	attribution:FuzzParseRules \
	api/auth:FuzzVerify \
	api:FuzzUsageQuery \
	api:FuzzRouteParams \
	api/web:FuzzSessionCookie

fuzz:
	@set -e; log=$$(mktemp); trap 'rm -f $$log' EXIT; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t##*:}; \
	  for try in 1 2; do \
	    echo "fuzz $$fn ./$$pkg ($(FUZZTIME))"; \
	    if $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -parallel 2 ./$$pkg >$$log 2>&1; then break; fi; \
	    echo "fuzz $$fn ./$$pkg failed:"; tail -20 $$log; \
	    if [ $$try = 2 ] || grep -q 'Failing input written' $$log; then \
	      $(GO) test -run "^$$fn\$$" ./$$pkg; exit 1; fi; \
	    echo "no failing input was written (the fuzzing engine, not the target): once more"; \
	  done; \
	done

## bench: the performance figures of docs/performance.md (P4 needs PostgreSQL
## and wrk; it skips, saying so, without them). One package at a time, so
## that no benchmark measures another's load; the timeout is per package (P3
## alone builds a month of Prometheus history: 13 minutes on an idle machine).
bench:
	$(GO) test -p 1 -run '^$$' -bench . -benchmem -count 1 -timeout 60m ./...

## demo: a simulated cluster (a window of the public trace when TRACE_DIR has
## it, a generated one otherwise) served by simulated exporters, replayed
## through the aggregator into a ledger (a throwaway PostgreSQL without
## DATABASE_URL), its report against the ground truth, then the API and the
## usage page on that ledger. Ctrl-C stops it.
demo: build
	$(BIN) demo --out demo-out $(DEMO_FLAGS)

## generate: rebuild every generated file (golden exposition files).
generate:
	$(GO) generate ./...
	$(GO) test -count=1 ./cmd/gpuledger -run 'Golden' -update

## check-generated: fail when generated files drift from the committed ones.
check-generated: generate
	@git diff --exit-code --stat || (echo "generated files drifted: run 'make generate' and commit"; exit 1)

clean:
	rm -rf bin demo-out
