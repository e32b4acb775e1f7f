# elt — see README.md. Every target works on a fresh machine; nothing needs to be installed by hand.

GO      ?= go
BIN     := bin
ELT     := $(BIN)/elt
DEMOAPI := $(BIN)/elt-demo-api

.PHONY: all build test test-citus citus-install vet demo demo-down superset superset-down superset-install bench bench-extract bench-refresh bench-tenant lint clean

all: build

REVISION := $(shell git rev-parse --short=12 HEAD 2>/dev/null)

build:
	$(GO) build -ldflags "-X main.revision=$(REVISION)" -o $(ELT) ./cmd/elt
	$(GO) build -o $(DEMOAPI) ./cmd/elt-demo-api

## test: vet, then every test against a real PostgreSQL (DATABASE_URL, or a throwaway cluster per test binary)
## and a real Apache Superset (installed once by superset-install).
test: vet superset-install
	$(GO) test -count=1 -timeout 20m ./...

vet:
	$(GO) vet ./...
	$(GO) vet -tags citus ./tests

## test-citus: the default project end to end on a Citus coordinator with two workers (throwaway clusters on
## this machine): migrate, extract, refresh, tenants, one shard per tenant query, tenant check. Builds Citus first.
test-citus: citus-install
	$(GO) test -tags citus -count=1 -timeout 20m -run TestCitus ./tests

## citus-install: Citus 13.2.2 from ../shared/vendor, built once per machine (cached in ~/.cache/elt) and
## installed into the PostgreSQL 15 server; installs its build dependencies with apt-get (root). It may upgrade
## the postgresql-15 package: run it before starting servers.
citus-install:
	bash tests/citus/build.sh

## demo: local Postgres + demo API, migrate, extract, refresh, three tenants; prints what each tenant sees.
demo: build
	bash demo/demo.sh up

## demo-down: stop what make demo started (the data stays in .elt/ for the next run).
demo-down:
	bash demo/demo.sh down

## superset: make demo, then a pinned Apache Superset on a free port, provisioned for the demo's tenants by
## elt superset sync; prints its URL and each tenant's login.
superset: demo
	bash demo/demo.sh superset

## superset-down: stop the Superset of make superset.
superset-down:
	bash demo/demo.sh superset-down

## superset-install: the pinned Superset (superset/requirements.txt) in a venv cached in ~/.cache/elt, and
## Debian's chromium for dashboard screenshots; nothing when they are there.
superset-install:
	bash superset/superset.sh install

bench: bench-extract bench-refresh bench-tenant

bench-extract: build
	bash tests/bench/extract.sh

# The baseline of the refresh benchmark's A/B of full rebuilds: the last commit before split steps (one
# transaction per step, one session).
BASELINE_REF ?= 20b10d9

bench-refresh: build
	BASELINE_REF=$(BASELINE_REF) bash tests/bench/refresh.sh

bench-tenant: build
	bash tests/bench/tenant.sh
	bash tests/bench/tenant_load.sh

## lint: squawk (npm squawk-cli) over every migration of both tracks (elt's own and the default project's) as
## tern renders it (each runs in one transaction).
lint: build
	rm -rf $(BIN)/lint && $(ELT) --project . migrate render $(BIN)/lint
	npx --yes squawk-cli@2.66.0 --assume-in-transaction $(BIN)/lint/elt/*.sql $(BIN)/lint/project/*.sql

clean:
	rm -rf $(BIN)
