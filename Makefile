# paystream — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GOLANGCI_VERSION := v2.15.0
GOLANGCI_LINT := $(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)
TEST_TIMEOUT ?= 40m
TF_VALIDATE ?= ../shared/tools/tf-validate/tf-validate

.PHONY: help build build-static test test-short lint bench bench-scale demo aws-up aws-down tf-validate chaos soak clean deps

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

deps: ## download Go modules and make sure moto_server and promtool are installed
	$(GO) mod download
	scripts/ensure-moto.sh
	scripts/ensure-promtool.sh

build: ## build consumer, producer, query and metrics-report into bin/
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

build-static: ## build static pure-Go consumer and producer into bin/ (what the container ships)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/ ./cmd/consumer ./cmd/producer

test: deps ## run every test CI runs: gofmt, vet, golangci-lint, Terraform checks, go test -race (tests start their own servers)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...
	@if [ -x $(TF_VALIDATE) ]; then $(TF_VALIDATE) deploy/terraform; else echo "skipping Terraform checks: $(TF_VALIDATE) not found"; fi
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...
	@# The race build runs 500 of the 2,000 small commits; run all 2,000 without it.
	$(GO) test -count=1 -run '^TestServiceMaintenanceKeepsMetadataSmall$$' ./pkg/iceberg

test-short: ## quick unit tests only
	$(GO) test -short ./...

lint: ## gofmt, go vet and the pinned golangci-lint
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...

bench: ## run the benchmarks quoted in BENCHMARKS.md
	GOMAXPROCS=1 $(GO) test -run '^$$' -bench . -benchmem ./pkg/schema ./pkg/dedup ./pkg/kpl

BENCH_SCALE_WORKERS ?= 1 2 4 8
BENCH_SCALE_SHARDS ?= 16
BENCH_SCALE_SECONDS ?= 60
BENCH_SCALE_COMMIT_DELAY ?= 300ms
BENCH_SCALE_RATE ?= 2000
BENCH_SCALE_MODE ?= worker
BENCH_SCALE_SKIP ?= 0
bench-scale: deps ## several workers on one table: commits/s, conflicts, events/s, freshness per BENCH_SCALE_WORKERS (default "1 2 4 8"); BENCH_SCALE_OUT=FILE(.json|.md), BENCH_SCALE_SKIP=S steady state after S s, BENCH_SCALE_LOG=FILE debug trace
	BENCH_SCALE=1 BENCH_SCALE_WORKERS="$(BENCH_SCALE_WORKERS)" BENCH_SCALE_SHARDS=$(BENCH_SCALE_SHARDS) BENCH_SCALE_SECONDS=$(BENCH_SCALE_SECONDS) \
	BENCH_SCALE_COMMIT_DELAY=$(BENCH_SCALE_COMMIT_DELAY) BENCH_SCALE_RATE=$(BENCH_SCALE_RATE) BENCH_SCALE_MODE=$(BENCH_SCALE_MODE) BENCH_SCALE_OUT=$(BENCH_SCALE_OUT) \
	BENCH_SCALE_SKIP=$(BENCH_SCALE_SKIP) BENCH_SCALE_LOG=$(BENCH_SCALE_LOG) \
	$(GO) test -count=1 -v -timeout 0 -run '^TestScale$$' ./internal/scalebench

demo: deps ## run the whole pipeline locally against moto and show the result
	scripts/demo.sh

aws-up: ## start moto_server (local Kinesis/DynamoDB/S3/Glue) on 127.0.0.1
	scripts/moto.sh up

aws-down: ## stop moto_server
	scripts/moto.sh down

tf-validate: ## terraform fmt/validate and tfsec, offline
	$(TF_VALIDATE) deploy/terraform

CHAOS_TRIALS ?= 5
chaos: deps ## fault-injection trials against the real binaries: CHAOS_TRIALS=N (default 5), SEED=S replays one, CHAOS_LONG=1 longer trials, CHAOS_CATALOG=glue on Glue + S3, CHAOS_COMMIT_MODE=single with the single committer, CHAOS_AGGREGATE=1 with KPL aggregates, CHAOS_READ_MODE=efo with enhanced fan-out (Kinesis from the kinesistest emulator)
	CHAOS_TRIALS=$(CHAOS_TRIALS) CHAOS_SEED=$(SEED) CHAOS_LONG=$(CHAOS_LONG) CHAOS_CATALOG=$(CHAOS_CATALOG) CHAOS_COMMIT_MODE=$(CHAOS_COMMIT_MODE) CHAOS_AGGREGATE=$(CHAOS_AGGREGATE) CHAOS_READ_MODE=$(CHAOS_READ_MODE) $(GO) test -count=1 -v -timeout 0 -run '^TestChaos$$' ./internal/chaos

SOAK_COMMITS ?= 20000
soak: deps ## compressed-time soak: 2 consumers, 4 shards, 250 ms commits until SOAK_COMMITS (default 20000) table commits; SOAK_CATALOG=glue for Glue + S3, SOAK_COMMIT_MODE=single for the single committer
	SOAK=1 SOAK_COMMITS=$(SOAK_COMMITS) SOAK_CATALOG=$(SOAK_CATALOG) SOAK_COMMIT_MODE=$(SOAK_COMMIT_MODE) SOAK_RATE=$(SOAK_RATE) $(GO) test -count=1 -v -timeout 0 -run '^TestSoak$$' ./internal/soak

clean: ## remove build output, local data and run state
	rm -rf bin data .run
