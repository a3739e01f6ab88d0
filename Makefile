# The project's commands. `make run` and `make test` work on a fresh machine: they install
# what is missing (a nats-server >= 2.10 into tools/) through scripts/ in this repository.

SHELL := /bin/bash
CARGO ?= cargo
NATS_SERVER := $(CURDIR)/tools/bin/nats-server
export NATS_SERVER_BIN := $(NATS_SERVER)

.PHONY: all tools postgres chromium build test lint fmt fuzz run demo deploy-check bench-gateway bench-gateway-instructions bench-subscriber bench-analytics bench-scale bench-hints bench-console screenshots clean

all: build

## tools: install nats-server (>= 2.10) into tools/bin unless a new enough one is installed,
## PostgreSQL for the crm-sync tests unless a server answers on 5432 or initdb is installed,
## and Debian's chromium and chromium-driver for the console's browser tests
tools: $(NATS_SERVER) postgres chromium

$(NATS_SERVER): scripts/install-nats-server.sh
	@bash scripts/install-nats-server.sh

postgres:
	@bash scripts/install-postgres.sh

chromium:
	@bash scripts/install-chromium.sh

build:
	$(CARGO) build --workspace

## test: every unit and integration test, against real nats-server processes
test: tools
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

## lint: formatting and clippy, warnings as errors
lint:
	python3 scripts/check-docs.py
	$(CARGO) fmt --all -- --check
	cd fuzz && $(CARGO) fmt -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all
	cd fuzz && $(CARGO) fmt

## fuzz: libFuzzer on the webhook parser and the spool's log reader, FUZZ_SECONDS (60) each;
## FUZZ_RUNS=N runs exactly N inputs per target from a fixed seed instead (CI)
fuzz:
	@bash scripts/fuzz.sh

## run: nats-server (unless one answers at NATS_URL), the gateway with a demo tenant, crm-sync, analytics, alerting, hints, c2d-keeper (for the demo tenant) and c2d-console (the event log in a browser)
run: $(NATS_SERVER)
	@bash scripts/run.sh

## demo: `make run` plus a simulated Chat2Desk account sending realistic traffic to it
demo: $(NATS_SERVER)
	@DEMO=1 bash scripts/run.sh

## deploy-check: render every overlay, validate against Kubernetes schemas, checkov, buf lint + breaking
deploy-check:
	@bash scripts/deploy-check.sh

## bench-gateway: gateway vs plain HTTP server, a hand-written relay (alternating runs) and raw JetStream publish
bench-gateway: tools
	$(CARGO) bench -p c2d-gateway --bench gateway

## bench-gateway-instructions: instructions per webhook in the gateway's own code (callgrind): steady where the wall clock is not
bench-gateway-instructions: tools
	$(CARGO) build --release -p c2d-gateway --bin c2d-gateway
	@bash scripts/gateway-instructions.sh

## bench-subscriber: SDK consume rate (decode + ack) vs a raw ordered read of the same stream
bench-subscriber: tools
	$(CARGO) bench -p c2d-subscriber --bench subscriber

## bench-analytics: rebuild rate vs a raw ordered read, and 30-day summary latency over 1M events
bench-analytics: tools
	$(CARGO) bench -p c2d-analytics --bench analytics

## bench-scale: c2d-analytics replaying one log as 1, 2 and 3 replicas: rate, CPU per event per replica, memory per tenant
bench-scale: tools
	$(CARGO) bench -p c2d-analytics --bench scale

## bench-console: the console's pages p50/p99 for a tenant with a million events
bench-console: tools
	$(CARGO) bench -p c2d-console --bench console

## screenshots: the README's console screenshots, taken by the browser test
screenshots: tools
	C2D_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(CARGO) test -p c2d-console --test system

## bench-hints: Suggest latency p50/p99 with 100,000 indexed pairs, in-process and over gRPC
bench-hints: tools
	$(CARGO) bench -p c2d-hints --bench hints

clean:
	$(CARGO) clean
	rm -rf tools .run fuzz/target fuzz/corpus fuzz/artifacts
