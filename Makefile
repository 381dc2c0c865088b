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

# bench: the hit-path comparison with nginx and FileServer (written to BENCHMARKS-results.md;
# BENCHFLAGS=-quick for 1s runs), then the Go benchmarks: hits in process (allocations per
# request), zip hits from disk and S3, the miss path against a 20 ms upstream (run once), and the
# everyday go commands straight, through a cold gofer and through a hot one (run once), and the
# cold project's go mod download all straight, through a cold and a hot gofer, and warmed (once);
# with GOFER_REAL_UPSTREAM=1, the same for fzf and hugo against the go command's own GOPROXY.
bench:
	scripts/bench.sh $(BENCHFLAGS)
	$(GO) test -run '^$$' -bench . -benchmem ./server/
	$(GO) test -run '^$$' -bench ZipHit -benchtime 5s ./e2e/
	$(GO) test -run '^$$' -bench MissPath -benchtime 1x -timeout 20m ./e2e/
	$(GO) test -run '^$$' -bench Everyday -benchtime 1x ./e2e/
	$(GO) test -run '^$$' -bench ColdProject -benchtime 1x -timeout 20m ./e2e/
	$(GO) test -run '^$$' -bench RealProjects -benchtime 1x -timeout 30m ./e2e/

clean:
	rm -rf bin
