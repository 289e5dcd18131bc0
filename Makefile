# softpatch: the two set-up commands are `make demo` and `make test`.
GO ?= go
BIN := bin/softpatch
COMMIT := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

.PHONY: all deps build demo test test-emulated emulator vet fmt-check bench fixtures ptx gpu-bundle slurm-check

all: build

# OpenBLAS headers and library for cgo: installed with apt when missing (as root), otherwise
# the command to run is printed.
deps:
	@if ! echo '#include <cblas.h>' | $(CC) -E -x c - >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing libopenblas-dev"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev >/dev/null; \
		else \
			echo "OpenBLAS is missing: run 'sudo apt-get install libopenblas-dev' (Debian/Ubuntu)"; exit 1; \
		fi; \
	fi

build: deps
	$(GO) build -ldflags "-X github.com/softpatch/softpatch/internal/buildinfo.commitHash=$(COMMIT)" -o $(BIN) ./cmd/softpatch

# The main job on the embedded default: the quickstart sweep on the generated dataset (written
# when absent), then its tables. A second run finds every cell done and only reports.
demo: build
	./$(BIN) run configs/quickstart.yaml --out runs/quickstart

# Everything CI checks: formatting, vet, the test suite, and the GPU package's tests once more
# on the CPU emulator of the CUDA driver (test-emulated).
test: deps fmt-check vet
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) test-emulated

# The quickstart sweep as a 3-task Slurm array on a one-node cluster started on this machine,
# against a single process, with a cancelled task and a task over its memory limit
# (scripts/slurm_check.sh; needs root and about 30 minutes; not part of make test).
slurm-check: build
	bash scripts/slurm_check.sh

# The cuda package's parity tests (and the CLI's GPU path) on the CPU emulator of the driver and
# cuBLAS (cuda/emulator): the kernels' own source compiled for the host, no GPU needed.
EMULATOR := build/emulator/libcuda.so.1
emulator: $(EMULATOR)

$(EMULATOR): cuda/emulator/emulator.cc cuda/emulator/prelude.h cuda/emulator/kernels.inc cuda/driver.h cuda/kernels.cu $(wildcard cuda/*.cuh)
	mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 -fPIC -shared -ffp-contract=off -o $@ cuda/emulator/emulator.cc -lopenblas

test-emulated: deps $(EMULATOR)
	SOFTPATCH_LIBCUDA=$(CURDIR)/$(EMULATOR) SOFTPATCH_CUBLAS=$(CURDIR)/$(EMULATOR) $(GO) test -count=1 ./cuda
	SOFTPATCH_LIBCUDA=$(CURDIR)/$(EMULATOR) SOFTPATCH_CUBLAS=$(CURDIR)/$(EMULATOR) $(GO) test -count=1 -run 'OnGPU|GPUFallback' ./cmd/softpatch

vet: deps
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Go benchmarks of the hot paths (quick pass; see README for the full commands; the GPU ones skip without a GPU).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./engine/... ./datasets ./experiments ./cuda

# Regenerate the golden fixtures (needs Debian's python3-torch, python3-torchvision, python3-pil).
fixtures:
	/usr/bin/python3 testdata/golden/gen_model.py
	/usr/bin/python3 datasets/testdata/gen_preprocess.py
	/usr/bin/python3 engine/compute/testdata/gen_golden.py
	/usr/bin/python3 datasets/testdata/gen_masks.py
	/usr/bin/python3 datasets/testdata/gen_affine.py
	/usr/bin/python3 experiments/testdata/gen_metrics.py
	/usr/bin/python3 engine/denoise/testdata/gen_golden.py
	cd engine/detector/testdata && /usr/bin/python3 gen_golden.py && /usr/bin/python3 gen_padim.py
	/usr/bin/python3 engine/coreset/testdata/gen_golden.py # imports the published sampler: $$SOFTPATCH_REF or /tmp/softpatch-ref/src
	/usr/bin/python3 internal/torchfile/testdata/gen_bad.py
	/usr/bin/python3 internal/torchfile/testdata/gen_npz.py
	/usr/bin/python3 engine/cflow/testdata/gen_golden.py $${CFLOW_AD:?checkout of gudovskiy/cflow-ad} $${FREIA:?checkout of vislearn/FrEIA at cc5cf5e}
	/usr/bin/python3 engine/cflow/testdata/gen_golden.py --maps
	/usr/bin/python3 engine/cflow/testdata/gen_golden.py --joint $${CFLOW_AD} $${FREIA}

# Regenerate the GPU kernels' PTX (committed, embedded in the binary) with Debian's clang: no
# CUDA toolkit needed. sm_70 is the baseline; the driver JIT-compiles for the GPU at hand.
ptx: cuda/kernels.ptx

cuda/kernels.ptx: cuda/kernels.cu cuda/*.cuh
	clang -x cuda --cuda-device-only -nocudainc -nocudalib --cuda-gpu-arch=sm_70 -O3 -ffp-contract=off \
		-S -o $@ cuda/kernels.cu

# The device check's bundle (cuda/gpu-check.sh runs it on the GPU machine, which has no Go
# toolchain): softpatch, the cuda package's test binary, and OpenBLAS with its Fortran runtime,
# xz-compressed into .gpu/ (ignored by git; the device tool's carry takes it along).
gpu-bundle: build
	rm -rf .gpu && mkdir -p .gpu/stage/lib
	cp bin/softpatch .gpu/stage/
	$(GO) test -c -o .gpu/stage/cuda.test ./cuda
	cp -L $$(ldd bin/softpatch | awk '/openblas|gfortran|quadmath/ {print $$3}') .gpu/stage/lib/
	tar -cJf .gpu/bundle.tar.xz -C .gpu/stage . && rm -rf .gpu/stage
	@ls -la .gpu/bundle.tar.xz
