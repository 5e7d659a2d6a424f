# The README's commands. `make test` runs every test the project has, on real
# servers; `make lint` runs the linters.

GO ?= go
STATICCHECK_VERSION := v0.8.2
GOBIN := $(shell $(GO) env GOPATH)/bin
# -race everywhere: every package has goroutines. The timeout bounds a hung
# test well inside CI's budget. -p 1: packages one at a time, so that the
# real servers of one package's failover scenarios do not starve another's
# step timeouts on a 2-core machine (the packages parallelise inside).
TESTFLAGS ?= -race -count=1 -timeout 30m -p 1

.PHONY: all build test deps lint staticcheck clean demo

all: build

build:
	$(GO) build -o bin/ ./cmd/...

deps:
	scripts/deps.sh

# A sandbox on loopback: 3 database servers, 3 agents, HAProxy. Ctrl-C stops it.
# FLAVOR=mysql runs MySQL 9.7 instead of MariaDB.
FLAVOR ?= mariadb
demo: deps
	$(GO) run ./integration/demo -flavor $(FLAVOR)

# The compose system tests run alone, after the rest: their timings
# (fence_after, lease_timeout) must not compete with the other packages.
test: deps
	$(GO) vet ./...
	$(GO) vet -tags system ./integration/system
	$(GO) test $(TESTFLAGS) ./...
	$(GO) test -tags system -count=1 -timeout 20m ./integration/system

$(GOBIN)/staticcheck:
	GOFLAGS=-mod=mod $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: $(GOBIN)/staticcheck

lint: staticcheck
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...

clean:
	rm -rf bin

# The benchmarks of DESIGN.md §10 that run on one machine (BENCHMARKS.md):
# failover after kill -9 and after SIGSTOP of the primary's mysqld, and the
# write-blocked window of a switchover, each measured by a client writing
# through HAProxy, on both flavours. Not part of `make test`; about 10
# minutes. REGENT_BENCH_TRIALS=N sets the trials per flavour,
# REGENT_TEST_FLAVORS=mariadb one flavour, REGENT_BENCH_STEPS=1 prints each
# operation's steps.
.PHONY: bench
bench: deps
	$(GO) test ./integration -run '^$$' -bench . -benchtime 1x -timeout 60m

# The system tests on docker-compose.test.yml (integration/system): a whole
# host killed, a host cut off from the others. They need Docker Engine and
# docker-compose; the base image is made once by scripts/build-image.sh
# (debootstrap + docker import, as root) and reused. Behind the "system"
# build tag so that `go test ./...` leaves them out; `make test` runs them on
# their own after the other packages.
.PHONY: system-test
system-test:
	$(GO) test -tags system ./integration/system -count=1 -timeout 30m -v
