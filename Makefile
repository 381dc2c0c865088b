# gofer: `make run` starts the proxy with a local Temporal dev server; `make test` runs every test.
# Pinned tools are built once per machine into ~/.cache/gofer/tools and linked into ./bin.

GO ?= go
export PATH := $(CURDIR)/bin:$(PATH)

.PHONY: run test tools build bench clean

build:
	$(GO) build -o bin/gofer ./cmd/gofer

tools:
	scripts/tools.sh temporal versitygw ferretdb composecheck staticcheck workflowcheck

run: build
	scripts/tools.sh temporal
	scripts/run.sh

test: tools
	$(GO) vet ./...
	staticcheck ./...
	workflowcheck ./...
	$(GO) test -count=1 -timeout 20m ./...

bench: tools
	$(GO) test -run '^$$' -bench . -benchtime 5s ./server/ ./e2e/

clean:
	rm -rf bin
