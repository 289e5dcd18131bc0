package backbone

import (
	"math"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// wrn50Random is RandomInit(WideResNet50_2, 0), built once (69M values,
// about 0.3 s and 276 MB) for the tests that need a full-size network.
var wrn50Random = func() func(t *testing.T) map[string]Tensor {
	var once sync.Once
	var m map[string]Tensor
	return func(t *testing.T) map[string]Tensor {
		if testing.Short() {
			t.Skip("full-size wide_resnet50_2 init skipped in -short mode")
		}
		once.Do(func() { m = RandomInit(WideResNet50_2, 0) })
		return m
	}
}()

func TestRandomInitShapes(t *testing.T) {
	for _, a := range []Arch{narrowArch, tinyArch} {
		m := RandomInit(a, 1)
		n := 0
		for _, p := range a.Params() {
			got, ok := m[p.Name]
			if p.Optional {
				if ok {
					t.Errorf("%s: optional %s present", a.Name, p.Name)
				}
				continue
			}
			n++
			if !ok || !slices.Equal(got.Shape, p.Shape) {
				t.Errorf("%s: %s has shape %v, want %v", a.Name, p.Name, got.Shape, p.Shape)
				continue
			}
			size := 1
			for _, d := range p.Shape {
				size *= d
			}
			if len(got.Data) != size {
				t.Errorf("%s: %s has %d values, want %d", a.Name, p.Name, len(got.Data), size)
			}
		}
		if len(m) != n {
			t.Errorf("%s: %d entries, want %d", a.Name, len(m), n)
		}
		if _, err := New(a, m, 3); err != nil {
			t.Errorf("%s: New rejects RandomInit: %v", a.Name, err)
		}
	}
}

func meanStd(x []float32) (mean, std float64) {
	for _, v := range x {
		mean += float64(v)
	}
	mean /= float64(len(x))
	for _, v := range x {
		d := float64(v) - mean
		std += d * d
	}
	return mean, math.Sqrt(std / float64(len(x)))
}

func TestRandomInitDistributions(t *testing.T) {
	m := wrn50Random(t)
	if len(m) != 267 {
		t.Errorf("%d entries, want 267", len(m))
	}
	// kaiming_normal_(fan_out, relu): std sqrt(2/(out*k*k)).
	for _, c := range []struct {
		name   string
		out, k int
	}{
		{"layer4.1.conv2.weight", 1024, 3}, // 9.4M values
		{"layer3.0.conv1.weight", 512, 1},  // 262K values
		{"conv1.weight", 64, 7},            // 9.4K values
	} {
		w := m[c.name].Data
		mean, std := meanStd(w)
		want := math.Sqrt(2 / float64(c.out*c.k*c.k))
		if math.Abs(std/want-1) > 0.05 {
			t.Errorf("%s: std %.6g, want %.6g within 5%%", c.name, std, want)
		}
		if math.Abs(mean) > 5*want/math.Sqrt(float64(len(w))) {
			t.Errorf("%s: mean %.3g, want about 0", c.name, mean)
		}
	}
	// BatchNorm: weight 1, bias 0, running_mean 0, running_var 1.
	for f, want := range map[string]float32{"weight": 1, "bias": 0, "running_mean": 0, "running_var": 1} {
		for _, v := range m["layer2.3.bn2."+f].Data {
			if v != want {
				t.Fatalf("layer2.3.bn2.%s has %v, want %v", f, v, want)
			}
		}
	}
	// fc: nn.Linear's uniform(-1/sqrt(2048), 1/sqrt(2048)) for weight and bias.
	bound := 1 / math.Sqrt(2048)
	for _, k := range []string{"fc.weight", "fc.bias"} {
		x := m[k].Data
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range x {
			lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
		}
		if lo < -bound || hi > bound || lo > -0.99*bound || hi < 0.99*bound {
			t.Errorf("%s: range [%.5g, %.5g], want about [-%.5g, %.5g]", k, lo, hi, bound, bound)
		}
		_, std := meanStd(x)
		if k == "fc.weight" && math.Abs(std/(bound/math.Sqrt(3))-1) > 0.01 {
			t.Errorf("fc.weight: std %.5g, uniform's is %.5g", std, bound/math.Sqrt(3))
		}
	}
}

func TestRandomInitDeterministic(t *testing.T) {
	a := RandomInit(narrowArch, 7)
	prev := runtime.GOMAXPROCS(1)
	b := RandomInit(narrowArch, 7)
	runtime.GOMAXPROCS(prev)
	c := RandomInit(narrowArch, 8)
	same, differ := true, false
	for k, x := range a {
		for i := range x.Data {
			if x.Data[i] != b[k].Data[i] {
				same = false
			}
			if x.Data[i] != c[k].Data[i] {
				differ = true
			}
		}
	}
	if !same {
		t.Error("RandomInit(seed 7) differs between runs (or with GOMAXPROCS)")
	}
	if !differ {
		t.Error("RandomInit gives the same values for seeds 7 and 8")
	}
	// Different layers draw different values.
	if a["layer1.0.conv2.weight"].Data[0] == a["layer1.1.conv2.weight"].Data[0] {
		t.Error("two layers start with the same value")
	}
}
