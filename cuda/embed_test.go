package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/compute"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/engine/embed"
)

// uploadActivations copies host layers to the device as Backbone.Run
// leaves them, so that the embedding's parity does not depend on the
// backbone's.
func uploadActivations(d *Device, feats []backbone.Feature) (*Activations, error) {
	a := &Activations{d: d, bufs: []Buffer{}}
	for _, f := range feats {
		b, err := d.Alloc(int64(len(f.Data)) * 4)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.bufs = append(a.bufs, b)
		if err := Upload(d, b, 0, f.Data); err != nil {
			a.Close()
			return nil, err
		}
		f.Data = nil
		a.Layers = append(a.Layers, f)
	}
	return a, nil
}

// layerShape is a synthetic layer's shape.
type layerShape struct{ c, h, w int }

// embedCase is an embedding parity case.
type embedCase struct {
	name   string
	c      embed.Config
	n      int
	layers []layerShape
}

// smallEmbedCases are quick on the CPU emulator too: the default config,
// the 5/2/100/64 case (three layers, grids 14, 7 and 4), a
// shallower layer after a deeper one (downsampling), non-square maps, an
// even patch, a layer of another size on the same grid and a single layer.
var smallEmbedCases = []embedCase{
	{"default", embed.Default(), 2, []layerShape{{16, 12, 12}, {32, 6, 6}}},
	{"p5s2", embed.Config{PatchSize: 5, Stride: 2, PretrainDim: 100, TargetDim: 64}, 2, []layerShape{{8, 28, 28}, {12, 14, 14}, {20, 7, 7}}},
	{"deep-first", embed.Config{PatchSize: 3, Stride: 1, PretrainDim: 20, TargetDim: 30}, 2, []layerShape{{6, 6, 6}, {5, 12, 12}}},
	{"non-square", embed.Config{PatchSize: 3, Stride: 1, PretrainDim: 17, TargetDim: 9}, 3, []layerShape{{7, 9, 13}, {11, 5, 7}, {4, 3, 2}}},
	{"even-patch", embed.Config{PatchSize: 4, Stride: 3, PretrainDim: 31, TargetDim: 50}, 1, []layerShape{{5, 11, 10}, {9, 4, 4}}},
	{"same-grid", embed.Config{PatchSize: 5, Stride: 2, PretrainDim: 12, TargetDim: 24}, 2, []layerShape{{3, 28, 28}, {4, 27, 27}, {6, 14, 14}}},
	{"one-layer", embed.Config{PatchSize: 1, Stride: 1, PretrainDim: 8, TargetDim: 8}, 2, []layerShape{{8, 5, 5}}},
}

// synthLayers returns random layers of the case's shapes, with some zeros
// and negative zeros.
func synthLayers(r *rand.Rand, ec embedCase) []backbone.Feature {
	var feats []backbone.Feature
	for i, s := range ec.layers {
		x := randn(r, ec.n*s.c*s.h*s.w)
		for j := range x {
			switch r.IntN(50) {
			case 0:
				x[j] = 0
			case 1:
				x[j] = float32(math.Copysign(0, -1))
			}
		}
		feats = append(feats, backbone.Feature{Layer: fmt.Sprintf("layer%d", i+1), N: ec.n, C: s.c, H: s.h, W: s.w, Data: x})
	}
	return feats
}

// firstDiff describes the first value whose bits differ between got and
// want, or their lengths' mismatch; "" when they are identical.
func firstDiff(got, want []float32) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d values, want %d", len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			return fmt.Sprintf("value %d is %v (%#x), want %v (%#x)", i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
	return ""
}

// TestEmbedParity embeds synthetic layers on the GPU and on the CPU
// (embed.Config.Embed): identical bits, for the default config at the
// issue's sizes (layer2 and layer3 of wide_resnet50_2 at 224 px), the
// 5/2/100/64 config on 28x28, 14x14 and 7x7 layers, and the small cases.
func TestEmbedParity(t *testing.T) {
	d := openOrSkip(t)
	cases := append([]embedCase{
		{"default-224", embed.Default(), 2, []layerShape{{512, 28, 28}, {1024, 14, 14}}},
		{"p5s2-issue", embed.Config{PatchSize: 5, Stride: 2, PretrainDim: 100, TargetDim: 64}, 2, []layerShape{{64, 28, 28}, {128, 14, 14}, {256, 7, 7}}},
	}, smallEmbedCases...)
	r := rand.New(rand.NewPCG(21, 22))
	for _, ec := range cases {
		feats := synthLayers(r, ec)
		want, wantPos, err := ec.c.Embed(feats)
		if err != nil {
			t.Fatal(err)
		}
		if gh, gw := ec.c.Grid(ec.layers[0].h, ec.layers[0].w); wantPos != gh*gw {
			t.Fatalf("%s: CPU positions %d, grid %dx%d", ec.name, wantPos, gh, gw)
		}
		a, err := uploadActivations(d, feats)
		if err != nil {
			t.Fatal(err)
		}
		e, err := d.NewEmbedder(ec.c)
		if err != nil {
			t.Fatal(err)
		}
		got, pos, err := e.Embed(a)
		if err != nil {
			t.Fatalf("%s: %v", ec.name, err)
		}
		if pos != wantPos {
			t.Errorf("%s: %d positions, CPU %d", ec.name, pos, wantPos)
		}
		if diff := firstDiff(got, want); diff != "" {
			t.Errorf("%s: %s", ec.name, diff)
		}
		if err := a.Close(); err != nil {
			t.Error(err)
		}
		if _, _, err := e.Embed(a); err == nil {
			t.Errorf("%s: embedding of closed activations accepted", ec.name)
		}
		e.Close()
	}
}

// TestMapsParity computes anomaly maps on the GPU and with detector.Map
// (sigma = detector.Smoothing; another sigma against compute.ResizeBilinear
// plus detector.GaussianFilter): identical bits.
func TestMapsParity(t *testing.T) {
	d := openOrSkip(t)
	r := rand.New(rand.NewPCG(23, 24))
	for _, c := range []struct {
		n, gh, gw, size int
		sigma           float64
	}{{3, 28, 28, 224, detector.Smoothing}, {3, 5, 7, 33, detector.Smoothing}, {2, 14, 9, 40, 2.5}, {1, 1, 1, 3, 4}} {
		scores := randn(r, c.n*c.gh*c.gw)
		got, err := d.Maps(scores, c.n, c.gh, c.gw, c.size, c.sigma)
		if err != nil {
			t.Fatal(err)
		}
		want := cpuMaps(scores, c.n, c.gh, c.gw, c.size, c.sigma)
		if diff := firstDiff(got, want); diff != "" {
			t.Errorf("%+v: %s", c, diff)
		}
	}
	if _, err := d.Maps(make([]float32, 5), 1, 2, 3, 8, 4); err == nil {
		t.Error("5 scores for 2x3 accepted")
	}
}

// cpuMaps is Maps on the CPU: detector.Map for sigma = detector.Smoothing,
// otherwise its two steps.
func cpuMaps(scores []float32, n, gh, gw, size int, sigma float64) []float32 {
	out := make([]float32, n*size*size)
	for i := 0; i < n; i++ {
		dst, src := out[i*size*size:(i+1)*size*size], scores[i*gh*gw:(i+1)*gh*gw]
		if sigma == detector.Smoothing {
			detector.Map(dst, src, gh, gw, size)
			continue
		}
		compute.ResizeBilinear(dst, src, 1, gh, gw, size, size)
		detector.GaussianFilter(dst, size, size, sigma)
	}
	return out
}

// TestActivationsRoundTrip runs a random-init resnet50 to layer2 with Run:
// Download gives Forward's values, Embed the CPU embedding of them; Close
// twice is fine and closed activations are refused.
func TestActivationsRoundTrip(t *testing.T) {
	d := blasOrSkip(t)
	_, g := gpuBackbone(t, d, backbone.ResNet50, 1)
	n, s := 2, 64
	x := randn(rand.New(rand.NewPCG(25, 26)), n*3*s*s)
	layers := []string{"layer2", "layer1"}
	want, err := g.Forward(x, n, s, s, layers)
	if err != nil {
		t.Fatal(err)
	}
	a, err := g.Run(x, n, s, s, layers)
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Download()
	if err != nil {
		t.Fatal(err)
	}
	for i := range layers {
		w, o := want[i], got[i]
		if o.Layer != w.Layer || o.N != w.N || o.C != w.C || o.H != w.H || o.W != w.W || a.Layers[i].Data != nil {
			t.Fatalf("%s: %s %dx%dx%dx%d, Forward %s %dx%dx%dx%d", layers[i], o.Layer, o.N, o.C, o.H, o.W, w.Layer, w.N, w.C, w.H, w.W)
		}
		if diff := firstDiff(o.Data, w.Data); diff != "" {
			t.Errorf("%s: %s", layers[i], diff)
		}
	}
	c := embed.Default()
	e, err := d.NewEmbedder(c)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	emb, pos, err := e.Embed(a)
	if err != nil {
		t.Fatal(err)
	}
	wantEmb, wantPos, err := c.Embed(got)
	if err != nil {
		t.Fatal(err)
	}
	if pos != wantPos {
		t.Errorf("%d positions, CPU %d", pos, wantPos)
	}
	if diff := firstDiff(emb, wantEmb); diff != "" {
		t.Errorf("embedding: %s", diff)
	}
	// Pick: one layer as a view; closing it leaves a intact.
	v, err := a.Pick([]string{"layer1"})
	if err != nil {
		t.Fatal(err)
	}
	one, err := v.Download()
	if err != nil {
		t.Fatal(err)
	}
	if diff := firstDiff(one[0].Data, want[1].Data); len(one) != 1 || diff != "" {
		t.Errorf("picked layer1: %d layers, %s", len(one), diff)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Download(); err != nil {
		t.Errorf("download after closing a view: %v", err)
	}
	if _, err := a.Pick([]string{"layer3"}); err == nil {
		t.Error("picked a layer that was not run")
	}
	v2, err := a.Pick([]string{"layer2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := v2.Download(); err == nil {
		t.Error("download from a view of closed activations accepted")
	}
	if _, _, err := e.Embed(v2); err == nil {
		t.Error("embedding of a view of closed activations accepted")
	}
	if _, err := a.Download(); err == nil {
		t.Error("download of closed activations accepted")
	}
}

// BenchmarkEmbed embeds batches of 32 images at 224 px (wide_resnet50_2's
// layer2 and layer3, the default config) from device activations, the
// features copied back, and reports images per second.
func BenchmarkEmbed(b *testing.B) {
	d := openBench(b, false)
	ec := embedCase{"default-224", embed.Default(), 32, []layerShape{{512, 28, 28}, {1024, 14, 14}}}
	a, err := uploadActivations(d, synthLayers(rand.New(rand.NewPCG(27, 28)), ec))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	e, err := d.NewEmbedder(ec.c)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if _, _, err := e.Embed(a); err != nil { // warm-up
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, _, err := e.Embed(a); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(ec.n*b.N)/b.Elapsed().Seconds(), "images/s")
}

// The tests below need no GPU. (The GPU tests above also run on the CPU
// emulator of the driver, cuda/emulator, which compiles the kernels'
// source for the host: make test-emulated.)

// TestPlanErrors checks that bad arguments are errors that say what is
// wrong.
func TestPlanErrors(t *testing.T) {
	ok := []backbone.Feature{{Layer: "layer2", N: 2, C: 4, H: 8, W: 8}, {Layer: "layer3", N: 2, C: 4, H: 4, W: 4}}
	for _, c := range []struct {
		c      embed.Config
		layers []backbone.Feature
		want   string
	}{
		{embed.Config{PatchSize: 3, Stride: 0, PretrainDim: 4, TargetDim: 4}, ok, "every field must be positive"},
		{embed.Default(), nil, "no layers"},
		{embed.Default(), []backbone.Feature{ok[0], {Layer: "layer3", N: 3, C: 4, H: 4, W: 4}}, "layer3 has shape"},
		{embed.Default(), []backbone.Feature{{Layer: "layer2", N: 2, C: 0, H: 8, W: 8}}, "layer2 has shape"},
		{embed.Config{PatchSize: 8, Stride: 1, PretrainDim: 4, TargetDim: 4}, []backbone.Feature{{Layer: "layer2", N: 1, C: 1, H: 1, W: 1}}, "empty"},
	} {
		if _, err := newEmbedPlan(c.c, c.layers); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v %v: error %v, want one saying %q", c.c, c.layers, err, c.want)
		}
	}
	for _, c := range []struct {
		scores, n, gh, gw, size int
		sigma                   float64
		want                    string
	}{
		{0, 0, 2, 2, 8, 4, "positive"},
		{4, 1, 2, 2, 0, 4, "positive"},
		{5, 1, 2, 2, 8, 4, "5 scores"},
		{4, 1, 2, 2, 8, 0, "sigma"},
		{4, 1, 2, 2, 8, math.NaN(), "sigma"},
		{4, 1, 2, 2, 8, math.Inf(1), "sigma"},
	} {
		if _, err := newMapsPlan(c.scores, c.n, c.gh, c.gw, c.size, c.sigma); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one saying %q", c, err, c.want)
		}
	}
}

// TestKernelCallsMatchSources checks every planned launch's arguments
// against the kernel's parameters in embed.cuh (a pointer takes a Buffer,
// int an int, long an int64, float a float32, double a float64) and in
// the embedded PTX (a stale kernels.ptx fails).
func TestKernelCallsMatchSources(t *testing.T) {
	sourcesOrSkip(t)
	src, err := os.ReadFile("embed.cuh")
	if err != nil {
		t.Fatal(err)
	}
	params := map[string][]string{}
	for _, m := range regexp.MustCompile(`extern "C" __global__ void (\w+)\(([^)]*)\)`).FindAllStringSubmatch(string(src), -1) {
		for _, p := range strings.Split(m[2], ",") {
			f := strings.Fields(p)
			params[m[1]] = append(params[m[1]], strings.Join(f[:len(f)-1], " ")+strings.Repeat("*", strings.Count(f[len(f)-1], "*")))
		}
	}
	ptx := map[string][]string{}
	for _, m := range regexp.MustCompile(`\.entry (\w+)\(([^)]*)\)`).FindAllStringSubmatch(kernelsPTX, -1) {
		for _, p := range regexp.MustCompile(`\.param \.(\w+)`).FindAllStringSubmatch(m[2], -1) {
			ptx[m[1]] = append(ptx[m[1]], p[1])
		}
	}
	next := uint64(0)
	fake := func(bytes int64) Buffer { // distinct addresses, nothing behind them
		next += 1 << 32
		return Buffer{Ptr: next, Bytes: bytes}
	}
	var calls []kernelCall
	for _, ec := range smallEmbedCases {
		var shapes []backbone.Feature
		for i, s := range ec.layers {
			shapes = append(shapes, backbone.Feature{Layer: fmt.Sprint(i), N: ec.n, C: s.c, H: s.h, W: s.w})
		}
		p, err := newEmbedPlan(ec.c, shapes)
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, p.calls(p.alloc(fake, make([]Buffer, len(shapes))))...)
	}
	mp, err := newMapsPlan(12, 1, 3, 4, 9, 4)
	if err != nil {
		t.Fatal(err)
	}
	calls = append(calls, mp.calls(mp.alloc(fake))...)
	calls = append(calls, kernelCall{"copy_f32", 1, []any{Buffer{}, int64(1), Buffer{}}}) // Backbone.Run's
	seen := map[string]bool{}
	for _, k := range calls {
		seen[k.kernel] = true
		ps, pt := params[k.kernel], ptx[k.kernel]
		if len(ps) != len(k.args) || len(pt) != len(k.args) {
			t.Fatalf("%s: %d arguments, embed.cuh has %d parameters, the PTX %d", k.kernel, len(k.args), len(ps), len(pt))
		}
		for i, a := range k.args {
			var want, wantPTX string
			switch a.(type) {
			case Buffer:
				want, wantPTX = "*", "u64"
			case int:
				want, wantPTX = "int", "u32"
			case int64:
				want, wantPTX = "long", "u64"
			case float32:
				want, wantPTX = "float", "f32"
			case float64:
				want, wantPTX = "double", "f64"
			default:
				t.Fatalf("%s: argument %d has type %T", k.kernel, i, a)
			}
			if p := ps[i]; !(want == "*" && strings.HasSuffix(p, "*")) && p != want && p != "const "+want {
				t.Errorf("%s: argument %d is a %T, the parameter a %s", k.kernel, i, a, p)
			}
			if pt[i] != wantPTX {
				t.Errorf("%s: argument %d is a %T, the PTX parameter .%s", k.kernel, i, a, pt[i])
			}
		}
		if k.total <= 0 {
			t.Errorf("%s: %d items", k.kernel, k.total)
		}
	}
	for k := range params {
		if !seen[k] {
			t.Errorf("kernel %s of embed.cuh is not planned", k)
		}
	}
	for _, k := range append(slices.Clone(embedKernels), mapsKernels...) {
		if !seen[k] {
			t.Errorf("kernel %s is loaded but not planned", k)
		}
	}
}
