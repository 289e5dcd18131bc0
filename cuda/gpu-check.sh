#!/usr/bin/env bash
# The GPU device check, run on the device machine from the repo root, from binaries built here
# (the device has no Go toolchain): `make gpu-bundle` writes .gpu/bundle.tar.xz (softpatch, the
# cuda package's test binary, OpenBLAS and its Fortran runtime); the device tool then runs
#
#   bash cuda/gpu-check.sh          with carry [".gpu"]
#
# It writes to $OUT (or /tmp/gpu-check): probe.txt (driver, GPU, library paths), version.txt,
# parity.txt (the parity suite, go test -v), bench.txt (kNN against the bare cuBLAS SGEMM of the
# same shape, the 16k-of-160k coreset, the backbone, the embedding, the discriminators),
# features.json (softpatch bench features: backbone and backbone + embedding, 224 px, batch 32),
# cell.txt with cell_gpu.json and cell_cpu.json (one SoftPatch-lof cell with and without the GPU),
# cflow.txt with cflow_gpu.json (one CFLOW cell of one sub-epoch, trained and scored on the GPU:
# its training fibers/s) and results.json (the numbers, parsed). At most 8 minutes, when every
# step runs into its timeout (90 + 90 + 30 + 30 + 2 x 60 + 120 s); a step cut short leaves what
# it wrote.
set -uo pipefail
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
root=/tmp/softpatch-gpu
rm -rf "$root" && mkdir -p "$root"
[ -f .gpu/bundle.tar.xz ] || { echo "no .gpu/bundle.tar.xz: run make gpu-bundle and carry .gpu"; exit 2; }
tar -xJf .gpu/bundle.tar.xz -C "$root" 2>/dev/null ||
	python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .gpu/bundle.tar.xz "$root" || exit 2
export LD_LIBRARY_PATH="$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# cuBLAS: the CUDA toolkit's, else a Python wheel's (nvidia-cublas, any layout).
cublas=${SOFTPATCH_CUBLAS:-}
[ -n "$cublas" ] || cublas=$( (ls /usr/local/cuda/lib64/libcublas.so* /usr/local/cuda/targets/x86_64-linux/lib/libcublas.so* 2>/dev/null;
	python3 -c 'import site, glob; [print(p) for d in site.getsitepackages() for p in glob.glob(d + "/nvidia/**/libcublas.so*", recursive=True)]' 2>/dev/null) | head -1)
if [ -n "$cublas" ]; then
	export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$cublas")"
else
	echo "no libcublas found: the kNN and SGEMM checks will skip" >&2
fi
{
	date -u
	nvidia-smi
	echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
	echo "cublas=${cublas:-none}"
	ldconfig -p | grep -E 'libcuda\.so|libcublas' || true
	ls /usr/local/cuda/lib64/libcublas* 2>/dev/null || true
} >"$out/probe.txt" 2>&1
"$root/softpatch" version >"$out/version.txt" 2>&1
timeout 90 "$root/cuda.test" -test.v -test.count=1 >"$out/parity.txt" 2>&1
echo "parity exit $?" >>"$out/parity.txt"
timeout 90 "$root/cuda.test" -test.run '^$' -test.bench . -test.benchtime 3x >"$out/bench.txt" 2>&1
echo "bench exit $?" >>"$out/bench.txt"
timeout 30 "$root/softpatch" bench features --device gpu --batches 32 --images 256 --json >"$out/features.json" 2>"$out/features.log"
echo "features exit $?" >>"$out/features.log"
# One SoftPatch-lof cell on a generated class (200 training + 80 test images, noise 0.1 with
# overlap) with the backbone, patch embedding, discriminator, coreset, scoring and maps on the
# GPU (decoding and metrics on the machine's CPUs), and the same cell on the CPU alone.
timeout 30 "$root/softpatch" synth --out /tmp/sp-data --classes wood >"$out/cell.txt" 2>&1
tv=""
[ -x /usr/bin/time ] && tv="/usr/bin/time -v"
for dev in gpu cpu; do
	$tv timeout 60 "$root/softpatch" eval --data /tmp/sp-data --class wood --method softpatch-lof --noise 0.1 \
		--overlap --device "$dev" --json "$out/cell_$dev.json" >>"$out/cell.txt" 2>&1
	echo "cell $dev exit $?" >>"$out/cell.txt"
done
# One CFLOW cell on the same class, its published decoders (layer2..4, 8 blocks) trained for one
# sub-epoch on the GPU: the training stage's fibers/s.
timeout 120 "$root/softpatch" eval --data /tmp/sp-data --class wood --method cflow --noise 0.1 --overlap --device gpu \
	--set cflow.meta_epochs=1 --set cflow.sub_epochs=1 --set cflow.warm_epochs=0 --json "$out/cflow_gpu.json" >"$out/cflow.txt" 2>&1
echo "cflow exit $?" >>"$out/cflow.txt"
python3 - "$out" <<'PY'
import json, re, sys
out = sys.argv[1]
res = {"version": open(f"{out}/version.txt").read()}
par = open(f"{out}/parity.txt").read()
res["parity"] = {m[1]: m[0] for m in re.findall(r"--- (PASS|FAIL|SKIP): (\w+)", par)}
res["parity_notes"] = re.findall(r"\w+_test.go:\d+: (.*)", par)
bench = {}
for line in open(f"{out}/bench.txt"):
    f = line.split()
    if f and f[0].startswith("Benchmark"):
        b = {}
        for v, u in zip(f[2::2], f[3::2]):
            try:
                b[u] = float(v)
            except ValueError:  # a benchmark cut short by the timeout
                pass
        if b:
            bench[re.sub(r"-\d+$", "", f[0])] = b
res["bench"] = bench
try:
    res["features"] = [json.loads(l) for l in open(f"{out}/features.json") if l.strip()]
except Exception as e:
    res["features"] = f"no result: {e}"
k, s = bench.get("BenchmarkSearch1", {}), bench.get("BenchmarkSgemmSameShape", {})
if "GFLOP/s" in k and "GFLOP/s" in s:
    res["knn_fraction_of_sgemm"] = k["GFLOP/s"] / s["GFLOP/s"]
for dev in ("gpu", "cpu"):
    try:
        c = json.load(open(f"{out}/cell_{dev}.json"))
        res[f"cell_{dev}"] = {k: c[k] for k in ("device", "seconds", "image_auroc", "pixel_auroc", "bank_size")}
    except Exception as e:
        res[f"cell_{dev}"] = f"no result: {e}"
try:
    c = json.load(open(f"{out}/cflow_gpu.json"))
    # Steps per layer and sub-epoch: the image batches of 32 (the last incomplete one dropped)
    # times each layer's fibers, fed 256 at a time (the remainder dropped), at 224 px: 28 x 28,
    # 14 x 14 and 7 x 7 positions.
    batches = c["train_images"] // 32
    fibers = sum(batches * 32 * hw // 256 * 256 for hw in (784, 196, 49))
    res["cflow_gpu"] = {k: c[k] for k in ("device", "seconds", "train_images", "image_auroc", "pixel_auroc")}
    res["cflow_gpu"]["train_fibers"] = fibers
    res["cflow_gpu"]["train_fibers_per_s"] = fibers / c["seconds"]["train"]
except Exception as e:
    res["cflow_gpu"] = f"no result: {e}"
json.dump(res, open(f"{out}/results.json", "w"), indent=1)
print(json.dumps(res, indent=1))
PY
