# softpatch: the two set-up commands are `make demo` and `make test`.
GO ?= go
BIN := bin/softpatch
COMMIT := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

.PHONY: all build demo test vet fmt-check bench fixtures

all: build

build:
	$(GO) build -ldflags "-X main.commitHash=$(COMMIT)" -o $(BIN) ./cmd/softpatch

# The main job on the embedded default (generated images).
demo: build
	./$(BIN) demo --out demo-out

# Everything CI checks: formatting, vet, and the test suite.
test: fmt-check vet
	$(GO) test -count=1 ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Go benchmarks of the hot paths (quick pass; see README for the full commands).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./engine/...

# Regenerate the golden fixtures (needs Debian's python3-torch, python3-torchvision, python3-pil).
fixtures:
	/usr/bin/python3 testdata/golden/gen_model.py
	/usr/bin/python3 datasets/testdata/gen_preprocess.py
	/usr/bin/python3 engine/compute/testdata/gen_golden.py
