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

.PHONY: all build test deps lint staticcheck clean demo chaos

all: build

# The binaries say which build they are (regent version, regentctl version,
# regent_build_info, the status page): the nearest tag, commits since and
# the commit, "-dirty" for uncommitted changes. Without git, or for a plain
# `go build`, they name what the toolchain recorded (internal/buildinfo).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

# A release in dist/: regent and regentctl for linux/amd64 and arm64, a
# Debian package of each, and the OCI image regent:$(VERSION) for this
# machine (scripts/release.sh says what each holds). REGENT_IMAGE_BASE picks
# the image's base: debian:12.11-slim by default; on machines that cannot
# pull, regent-base:bookworm (made by scripts/build-image.sh, as root).
.PHONY: release
release:
	VERSION=$(VERSION) scripts/release.sh

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
	$(MAKE) --no-print-directory fuzz
	$(GO) test -tags system -count=1 -timeout 20m ./integration/system

# Short fuzzing runs of what agents take from each other (issue 11): a
# snapshot a leader installs on a follower, and a report a peer posts. Their
# seed corpora also run in every `go test`; here the fuzzer searches
# FUZZTIME each: about 25 s in all with a warm build cache.
FUZZTIME ?= 10s
.PHONY: fuzz
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzRestoreSnapshot$$' -fuzztime $(FUZZTIME) ./consensus
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeReport$$' -fuzztime $(FUZZTIME) ./agent

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

# The benchmarks of issue 10 (BENCHMARKS.md is their output, targets
# included), on netlab hosts (integration/netlab: each database host a network
# namespace with its mysqld and its agent, an HAProxy host in front), both
# flavours, a client writing through HAProxy from the root namespace: a
# frozen mysqld (default and fast settings), a frozen host, a host cut off
# from the others, a killed mysqld -> first write through HAProxy; the
# client-visible gap of a switchover beside Regent's write_blocked (runtime-
# API push, and health checks only); false failovers in a soak behind a
# lossy, jittery link. Each figure is printed beside its target; the run ends
# with a Markdown table of them. Needs root (network namespaces, iptables);
# not part of `make test`; about an hour on a quiet 2-core machine.
#   BENCH=Switchover                  one benchmark (a -bench regexp)
#   REGENT_TEST_FLAVORS=mariadb       one flavour
#   REGENT_BENCH_TRIALS=N             trials per flavour and setting
#   REGENT_BENCH_STEPS=1              every operation's steps under its trial
#   REGENT_BENCH_SOAK=10m             the soak's duration
#   REGENT_BENCH_LOGS=DIR             keep every lab's agent and HAProxy logs
BENCH ?= .
BENCH_TIMEOUT ?= 4h
.PHONY: bench
bench: deps
	$(GO) test ./integration -run '^$$' -bench '$(BENCH)' -benchtime 1x -timeout $(BENCH_TIMEOUT)

# The fleet benchmarks of issue 15 (integration/fleet; BENCHMARKS.md, "Fleet
# scale", is their output): three real agents over a simulated fleet
# (integration/fleetsim serving topology/mysqlsim EMULATED MariaDB instances
# on 127.21.x.y:23306), 1,000 clusters x 5 by default: the agents' CPU, RSS,
# probe latency and missed rounds, Raft growth and snapshots over an idle
# window, one dead primary, then 50 at once; and one idle agent of the
# sandbox (three real MariaDB) at default timings. Not part of `make test`
# (TestFleetScale there is the small behavioural one).
#   REGENT_FLEET_CLUSTERS=N REGENT_FLEET_SIZE=N   the fleet (1000, 5)
#   REGENT_FLEET_PROCS=N                          fleetsim processes (4)
#   REGENT_FLEET_WINDOW=30m                       the idle window (2m)
#   REGENT_FLEET_DEAD=N                           primaries killed at once (50)
.PHONY: bench-fleet
bench-fleet: deps
	$(GO) test ./integration/fleet -run '^$$' -bench . -benchtime 1x -timeout $(BENCH_TIMEOUT)

# The randomized fault campaign (issue 12, integration/chaos): seeded
# schedules of faults (kills, freezes, partitions one-way and Raft-only, a
# lossy link, the Raft leader killed mid-operation, switchovers and manual
# failovers) against three real agents, mysqld and HAProxy on netlab hosts,
# each schedule judged by the checker. `make test` runs 6 schedules per
# flavour from seed 1 (the same ones every run); this draws a new base seed
# (printed) unless CHAOS_SEED is given. A failure prints its seed, schedule,
# violations and timeline, and keeps the logs and the history in CHAOS_DIR.
#   CHAOS_SCHEDULES=N   schedules per flavour (about 20 s each)
#   CHAOS_SEED=S        the first seed (S, S+1, ...): replays a failure
#   CHAOS_REPORT=FILE   the campaign's Markdown table
#   REGENT_TEST_FLAVORS=mariadb   one flavour
CHAOS_SCHEDULES ?= 50
CHAOS_SEED ?= $(shell date +%s)
CHAOS_REPORT ?= chaos-report.md
CHAOS_DIR ?= /tmp/regent-chaos
chaos: deps
	@echo "chaos: base seed $(CHAOS_SEED), $(CHAOS_SCHEDULES) schedules per flavour, report $(CHAOS_REPORT), failures kept in $(CHAOS_DIR)"
	CHAOS_SCHEDULES=$(CHAOS_SCHEDULES) CHAOS_SEED=$(CHAOS_SEED) CHAOS_REPORT=$(abspath $(CHAOS_REPORT)) CHAOS_DIR=$(CHAOS_DIR) \
		$(GO) test ./integration/chaos -run '^TestChaosCampaign$$' -count=1 -timeout 48h -v

# The system tests on docker-compose.test.yml (integration/system): a whole
# host killed, a host cut off from the others. They need Docker Engine and
# docker-compose; the base image is made once by scripts/build-image.sh
# (debootstrap + docker import, as root) and reused. Behind the "system"
# build tag so that `go test ./...` leaves them out; `make test` runs them on
# their own after the other packages.
.PHONY: system-test
system-test:
	$(GO) test -tags system ./integration/system -count=1 -timeout 30m -v
