# The README's commands. `make test` runs every test the project has, on real
# servers; `make lint` runs the linters.

GO ?= go
STATICCHECK_VERSION := v0.8.2
GOBIN := $(shell $(GO) env GOPATH)/bin
# -race everywhere: every package has goroutines. The timeout bounds a hung
# test well inside CI's budget.
TESTFLAGS ?= -race -count=1 -timeout 30m

.PHONY: all build test deps lint staticcheck clean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

deps:
	scripts/deps.sh

test: deps
	$(GO) vet ./...
	$(GO) test $(TESTFLAGS) ./...

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
