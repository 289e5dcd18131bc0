package cuda

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/engine/coreset"
	"github.com/softpatch/softpatch/engine/knn"
)

// sourcesOrSkip skips a test that reads the package's kernel sources when
// they are not in the working directory (a test binary run elsewhere, as
// the device check runs it).
func sourcesOrSkip(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("kernels.cu"); err != nil {
		t.Skipf("kernel sources not here: %v", err)
	}
}

// openOrSkip opens GPU 0 or skips the test with the loader's reason.
func openOrSkip(t *testing.T) *Device {
	t.Helper()
	d, err := Open(0)
	if err != nil {
		if err.Error() == "" {
			t.Fatal("Open failed with an empty reason")
		}
		t.Skipf("no GPU: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("device: %s", d)
	return d
}

// emulated reports whether d is the CPU emulator of cuda/emulator, which
// runs every thread on one core: tests shrink their largest sizes there.
func emulated(d *Device) bool { return strings.Contains(d.Name, "emulator") }

// blasOrSkip is openOrSkip for tests that need cuBLAS too.
func blasOrSkip(t *testing.T) *Device {
	t.Helper()
	d := openOrSkip(t)
	if !d.HasBLAS() {
		t.Skipf("no cuBLAS: %v", d.BLASError)
	}
	return d
}

func randn(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// lowRank returns n points of dimension dim on 16 latent factors plus a
// little noise, like projected patch features.
func lowRank(r *rand.Rand, n, dim int) []float32 {
	f := randn(r, 16*dim)
	x := make([]float32, n*dim)
	for i := 0; i < n; i++ {
		z := randn(r, 16)
		for j := 0; j < dim; j++ {
			s := 0.1 * r.NormFloat64()
			for k, zk := range z {
				s += float64(zk) * float64(f[k*dim+j])
			}
			x[i*dim+j] = float32(s)
		}
	}
	return x
}

// TestOpenReason checks that Open either opens a device or says why not.
func TestOpenReason(t *testing.T) {
	d, err := Open(0)
	if err != nil {
		if err.Error() == "" {
			t.Fatal("empty reason")
		}
		t.Logf("no GPU here: %v", err)
		return
	}
	defer d.Close()
	if d.Name == "" || d.Memory <= 0 || d.SMs <= 0 || d.Major < 7 {
		t.Errorf("device %+v", d)
	}
	if _, err := Open(1 << 20); err == nil {
		t.Error("GPU 2^20 opened")
	}
}

// TestCopies round-trips values through device memory and checks bounds.
func TestCopies(t *testing.T) {
	d := openOrSkip(t)
	b, err := d.Alloc(64)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(b)
	in := []float32{1, 2, 3, 4.5}
	if err := Upload(d, b, 8, in); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, 4)
	if err := Download(d, out, b, 8); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(in, out) {
		t.Errorf("round trip %v", out)
	}
	if err := Upload(d, b, 60, in); err == nil {
		t.Error("upload past the end accepted")
	}
}

// TestSgemmParity compares the device SGEMM (cuBLAS) with the CPU's on
// every transpose combination: within 1e-5 of the largest magnitude.
func TestSgemmParity(t *testing.T) {
	d := blasOrSkip(t)
	r := rand.New(rand.NewPCG(1, 2))
	m, n, k := 77, 130, 300
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			a, b := randn(r, m*k), randn(r, n*k)
			lda, ldb := k, n
			if ta {
				lda = m
			}
			if tb {
				ldb = k
			}
			want := make([]float32, m*n)
			compute.Sgemm(ta, tb, m, n, k, 1.5, a, lda, b, ldb, 0, want, n)
			ab, _ := d.Alloc(int64(len(a)) * 4)
			bb, _ := d.Alloc(int64(len(b)) * 4)
			cb, _ := d.Alloc(int64(m*n) * 4)
			Upload(d, ab, 0, a)
			Upload(d, bb, 0, b)
			if err := d.Sgemm(ta, tb, m, n, k, 1.5, ab, lda, bb, ldb, 0, cb, n); err != nil {
				t.Fatal(err)
			}
			got := make([]float32, m*n)
			if err := Download(d, got, cb, 0); err != nil {
				t.Fatal(err)
			}
			d.Free(ab)
			d.Free(bb)
			d.Free(cb)
			if e := relErr(got, want); e > 1e-5 {
				t.Errorf("transA %v transB %v: relative error %.3g", ta, tb, e)
			}
		}
	}
}

// relErr is max |got-want| / max |want|, +Inf when a value is NaN.
func relErr(got, want []float32) float64 {
	num, den := 0.0, 0.0
	for i := range want {
		if math.IsNaN(float64(got[i])) || math.IsNaN(float64(want[i])) {
			return math.Inf(1)
		}
		num = max(num, math.Abs(float64(got[i])-float64(want[i])))
		den = max(den, math.Abs(float64(want[i])))
	}
	return num / den
}

// TestKNNParity compares Search1 with engine/knn on 1,500 queries against
// 20,000 bank rows of 128 dims, in several tiles (a small budget): every
// distance within 1e-6 of |q|^2 + |b|^2 (the scale of float32's
// cancellation), every index the CPU's unless the distances to both
// candidates are within that tolerance (a near tie).
func TestKNNParity(t *testing.T) {
	d := blasOrSkip(t)
	r := rand.New(rand.NewPCG(3, 4))
	n, dim, nq := 20000, 128, 1500
	bank, q := lowRank(r, n, dim), lowRank(r, nq, dim)
	copy(q[:dim], bank[7*dim:8*dim]) // an exact match: distance 0
	cpu := knn.NewIndex(bank, n, dim)
	wd, wi := make([]float32, nq), make([]int32, nq)
	if err := cpu.Search(wd, wi, q, nq, 1, 0); err != nil {
		t.Fatal(err)
	}
	ix, err := d.NewIndex(bank, n, dim)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	for _, budget := range []int64{0, 8 << 20} {
		gd, gi := make([]float32, nq), make([]int32, nq)
		if err := ix.Search1(gd, gi, q, nq, budget); err != nil {
			t.Fatal(err)
		}
		ties := 0
		for i := range wd {
			// The distance is |q|^2 + |b|^2 - 2 q.b in float32: its error
			// scales with |q|^2 + |b|^2, not with the distance.
			tol := 1e-6 * (sqDist(q[i*dim:(i+1)*dim], nil) + sqDist(bank[int(wi[i])*dim:(int(wi[i])+1)*dim], nil))
			if math.Abs(float64(gd[i]-wd[i])) > tol {
				t.Fatalf("budget %d query %d: distance %v, CPU %v (tolerance %.3g)", budget, i, gd[i], wd[i], tol)
			}
			if gi[i] != wi[i] {
				other := sqDist(q[i*dim:(i+1)*dim], bank[int(gi[i])*dim:(int(gi[i])+1)*dim])
				if math.Abs(other-float64(wd[i])) > tol {
					t.Fatalf("budget %d query %d: index %d, CPU %d", budget, i, gi[i], wi[i])
				}
				ties++
			}
		}
		if tol := 1e-6 * 2 * sqDist(q[:dim], nil); gi[0] != 7 || float64(gd[0]) > tol {
			t.Errorf("exact match: %d at %v (tolerance %.3g)", gi[0], gd[0], tol)
		}
		t.Logf("budget %d: %d of %d indices differ from the CPU's on near ties", budget, ties, nq)
	}
}

// TestKNNParityK checks Search for k > 1 against engine/knn's: at every
// rank the distance within the float32 cancellation tolerance of
// TestKNNParity and the CPU's index unless a near tie; ranks past a small
// bank's size -1 and math.MaxFloat32; a budget that splits the bank into
// tiles, so that tiles merge into the running lists.
func TestKNNParityK(t *testing.T) {
	d := blasOrSkip(t)
	r := rand.New(rand.NewPCG(15, 16))
	type cse struct {
		n, nq, k int
		budget   int64
	}
	dim := 64
	for _, c := range []cse{{5000, 300, 5, 0}, {5000, 300, 32, 1 << 20}, {7, 20, 10, 0}, {9000, 40, 3, 1 << 20}} {
		bank, q := lowRank(r, c.n, dim), lowRank(r, c.nq, dim)
		copy(q[:dim], bank[3*dim:4*dim])
		cpu := knn.NewIndex(bank, c.n, dim)
		wd, wi := make([]float32, c.nq*c.k), make([]int32, c.nq*c.k)
		if err := cpu.Search(wd, wi, q, c.nq, c.k, 0); err != nil {
			t.Fatal(err)
		}
		ix, err := d.NewIndex(bank, c.n, dim)
		if err != nil {
			t.Fatal(err)
		}
		gd, gi := make([]float32, c.nq*c.k), make([]int32, c.nq*c.k)
		if err := ix.Search(gd, gi, q, c.nq, c.k, c.budget); err != nil {
			t.Fatal(err)
		}
		ix.Close()
		ties := 0
		for i := range wd {
			qi := q[i/c.k*dim : (i/c.k+1)*dim]
			if wi[i] < 0 {
				if gi[i] != -1 || gd[i] != math.MaxFloat32 {
					t.Fatalf("%+v: rank %d of query %d past the bank: %d at %v", c, i%c.k, i/c.k, gi[i], gd[i])
				}
				continue
			}
			tol := 1e-6 * (sqDist(qi, nil) + sqDist(bank[int(wi[i])*dim:(int(wi[i])+1)*dim], nil))
			if math.Abs(float64(gd[i]-wd[i])) > tol {
				t.Fatalf("%+v: rank %d of query %d: distance %v, CPU %v (tolerance %.3g)", c, i%c.k, i/c.k, gd[i], wd[i], tol)
			}
			if gi[i] != wi[i] {
				if gi[i] < 0 || math.Abs(sqDist(qi, bank[int(gi[i])*dim:(int(gi[i])+1)*dim])-float64(wd[i])) > tol {
					t.Fatalf("%+v: rank %d of query %d: index %d, CPU %d", c, i%c.k, i/c.k, gi[i], wi[i])
				}
				ties++
			}
		}
		if gi[0] != 3 {
			t.Errorf("%+v: exact match found at %d", c, gi[0])
		}
		t.Logf("%+v: %d of %d indices differ from the CPU's on near ties", c, ties, len(wi))
	}
}

// sqDist is |a - b|^2 in float64 (|a|^2 for a nil b).
func sqDist(a, b []float32) float64 {
	s := 0.0
	for i := range a {
		d := float64(a[i])
		if b != nil {
			d -= float64(b[i])
		}
		s += d * d
	}
	return s
}

// TestCoresetParity runs the greedy selection on the GPU (Greedy.Steps)
// and on the CPU: identical selections, with and without weights.
func TestCoresetParity(t *testing.T) {
	d := openOrSkip(t)
	r := rand.New(rand.NewPCG(5, 6))
	n, dim := 30000, 128
	if emulated(d) {
		n = 6000
	}
	x := lowRank(r, n, dim)
	w := make([]float32, n)
	for i := range w {
		if r.Float64() > 0.15 {
			w[i] = 1
		}
	}
	// NaN features in a twentieth of the points, in a smaller copy.
	xn := slices.Clone(x[:2000*dim])
	for i := 0; i < 100; i++ {
		xn[(i*20)*dim+3] = float32(math.NaN())
	}
	for _, c := range []struct {
		x       []float32
		n       int
		weights []float32
	}{{x, n, nil}, {x, n, w}, {xn, 2000, nil}} {
		x, n, weights := c.x, c.n, c.weights
		g := coreset.Greedy{Ratio: 0.1, Seed: 9, Weights: weights, Starts: coreset.SoftPatchStarts}
		want, err := g.SelectProjected(x, n, dim)
		if err != nil {
			t.Fatal(err)
		}
		g.Steps = d.CoresetSteps
		got, err := g.SelectProjected(x, n, dim)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			first := 0
			for first < len(got) && got[first] == want[first] {
				first++
			}
			t.Errorf("n %d, weights %v: selections differ from pick %d of %d", n, weights != nil, first, len(want))
		}
	}
}

// TestEmbeddedKernels checks, without a GPU, that the embedded PTX has an
// entry for every kernel the package launches (kernels.ptx is regenerated
// by make ptx from kernels.cu).
func TestEmbeddedKernels(t *testing.T) {
	// Every kernel of the sources (kernels.cu and the .cuh files it
	// includes) must be in the embedded PTX: a stale PTX fails here.
	sourcesOrSkip(t)
	srcs, err := filepath.Glob("*.cuh")
	if err != nil {
		t.Fatal(err)
	}
	entry := regexp.MustCompile(`extern "C" __global__ void (\w+)\(`)
	var names []string
	for _, f := range append([]string{"kernels.cu"}, srcs...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range entry.FindAllStringSubmatch(string(b), -1) {
			names = append(names, m[1])
		}
	}
	if len(names) < 6 {
		t.Fatalf("found only the kernels %v in the sources", names)
	}
	for _, k := range names {
		if !strings.Contains(kernelsPTX, ".entry "+k+"(") {
			t.Errorf("kernels.ptx has no entry %s: run make ptx", k)
		}
	}
	// ... and registered with the CPU emulator (cuda/emulator).
	inc, err := os.ReadFile("emulator/kernels.inc")
	if err != nil {
		t.Fatal(err)
	}
	reg := regexp.MustCompile(`(?m)^REG(?:_SYNC)?\((\w+)\)`).FindAllStringSubmatch(string(inc), -1)
	registered := map[string]bool{}
	for _, m := range reg {
		registered[m[1]] = true
	}
	for _, k := range names {
		if !registered[k] {
			t.Errorf("emulator/kernels.inc does not register %s", k)
		}
	}
	if len(reg) != len(names) {
		t.Errorf("emulator/kernels.inc registers %d kernels, the sources have %d", len(reg), len(names))
	}
	if !strings.Contains(kernelsPTX, ".target sm_70") {
		t.Error("kernels.ptx is not built for the sm_70 baseline")
	}
}

// BenchmarkSearch1 scores 100 images' patches (78,400 queries) against a
// 16,000-entry bank of 1024 dims (2.6 TFLOP), and reports GFLOP/s.
func BenchmarkSearch1(b *testing.B) {
	d := openBench(b, true)
	r := rand.New(rand.NewPCG(7, 8))
	n, dim, nq := 16000, 1024, 78400
	bank, q := randn(r, n*dim), randn(r, nq*dim)
	ix, err := d.NewIndex(bank, n, dim)
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	dist, idx := make([]float32, nq), make([]int32, nq)
	b.ResetTimer()
	for range b.N {
		if err := ix.Search1(dist, idx, q, nq, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2*float64(n)*float64(dim)*float64(nq)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkSgemmSameShape is the bare cuBLAS SGEMM of BenchmarkSearch1's
// shape (device-resident operands), for the ratio the issue asks for.
func BenchmarkSgemmSameShape(b *testing.B) {
	d := openBench(b, true)
	n, dim, nq := 16000, 1024, 78400
	qb, _ := d.Alloc(int64(nq) * int64(dim) * 4)
	bb, _ := d.Alloc(int64(n) * int64(dim) * 4)
	cb, err := d.Alloc(int64(nq) * int64(n) * 4)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Free(qb)
	defer d.Free(bb)
	defer d.Free(cb)
	b.ResetTimer()
	for range b.N {
		if err := d.Sgemm(false, true, nq, n, dim, -2, qb, dim, bb, dim, 0, cb, n); err != nil {
			b.Fatal(err)
		}
		if err := d.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2*float64(n)*float64(dim)*float64(nq)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkCoreset selects 16,000 of 160,000 points of 128 dims (the
// issue's device check), including the upload.
func BenchmarkCoreset(b *testing.B) {
	d := openBench(b, false)
	r := rand.New(rand.NewPCG(9, 10))
	n, dim := 160000, 128
	x := lowRank(r, n, dim)
	g := coreset.Greedy{Ratio: 0.1, Seed: 1, Steps: d.CoresetSteps}
	b.ResetTimer()
	for range b.N {
		if _, err := g.SelectProjected(x, n, dim); err != nil {
			b.Fatal(err)
		}
	}
}

// openBench opens GPU 0 for a benchmark (closed at its end), or skips it
// with the reason; needBLAS skips without cuBLAS too.
func openBench(b *testing.B, needBLAS bool) *Device {
	d, err := Open(0)
	if err != nil {
		b.Skipf("no GPU: %v", err)
	}
	b.Cleanup(func() { d.Close() })
	if needBLAS && !d.HasBLAS() {
		b.Skipf("no cuBLAS: %v", d.BLASError)
	}
	return d
}

// gpuBackbone builds a random-init arch up to stage deepest on the CPU and
// on d, which has cuBLAS (closed at the end of the test).
func gpuBackbone(t testing.TB, d *Device, arch backbone.Arch, deepest int) (*backbone.Backbone, *Backbone) {
	t.Helper()
	net, err := backbone.New(arch, backbone.RandomInit(arch, 0), deepest)
	if err != nil {
		t.Fatal(err)
	}
	g, err := d.NewBackbone(net)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return net, g
}

// TestBackboneParity runs a random-init wide_resnet50_2 (BatchNorm folded)
// up to layer3 on the GPU and on the CPU for 3 images of 96 px: every
// layer within 1e-4 of its largest magnitude (cuBLAS and our SGEMM sum in
// different orders).
func TestBackboneParity(t *testing.T) {
	d := blasOrSkip(t)
	net, g := gpuBackbone(t, d, backbone.WideResNet50_2, 2)
	r := rand.New(rand.NewPCG(11, 12))
	n, s := 3, 96
	x := randn(r, n*3*s*s)
	layers := []string{"layer3", "layer1", "layer2"} // any order, as the CPU's
	want, err := net.Forward(x, n, s, s, layers)
	if err != nil {
		t.Fatal(err)
	}
	// The whole batch in each GEMM, then (a small im2col budget) the
	// batch in groups of one or two images.
	for _, budget := range []int64{im2colBudget, 1 << 20} {
		g.colBudget = budget
		got, err := g.Forward(x, n, s, s, layers)
		if err != nil {
			t.Fatal(err)
		}
		for i := range layers {
			w, o := want[i], got[i]
			if o.N != w.N || o.C != w.C || o.H != w.H || o.W != w.W {
				t.Fatalf("%s: shape %dx%dx%d, CPU %dx%dx%d", layers[i], o.C, o.H, o.W, w.C, w.H, w.W)
			}
			if e := relErr(o.Data, w.Data); e > 1e-4 {
				t.Errorf("im2col budget %d: %s: relative error %.3g", budget, layers[i], e)
			} else {
				t.Logf("im2col budget %d: %s: relative error %.3g", budget, layers[i], e)
			}
		}
	}
}

// BenchmarkBackbone runs wide_resnet50_2 to layer3 at 224 px, batch 32, on
// the GPU (layer outputs copied back), and reports images per second.
func BenchmarkBackbone(b *testing.B) {
	d := openBench(b, true)
	_, g := gpuBackbone(b, d, backbone.WideResNet50_2, 2)
	n, s := 32, 224
	x := randn(rand.New(rand.NewPCG(13, 14)), n*3*s*s)
	layers := []string{"layer2", "layer3"}
	if _, err := g.Forward(x, n, s, s, layers); err != nil { // warm-up
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := g.Forward(x, n, s, s, layers); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
}
