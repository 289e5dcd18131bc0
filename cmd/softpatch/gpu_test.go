package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/cuda"
	"github.com/softpatch/softpatch/experiments"
)

// TestEvalOnGPU runs one cell of every detector family with --device gpu
// and with --device cpu and compares them: the same bank and image scores
// up to the backbone's float32 differences (im2col + SGEMM against the
// CPU's convolutions), every later stage bit for bit with its CPU
// counterpart. It needs a GPU or the CPU emulator of the driver
// (SOFTPATCH_LIBCUDA, as make test-emulated sets it); it skips otherwise.
func TestEvalOnGPU(t *testing.T) {
	gpuOrSkip(t)
	dir, data := nutClass(t, 8, 2, 3)
	for _, method := range []string{"softpatch-lof", "softpatch-gaussian", "patchcore", "padim+softpatch-nearest"} {
		var cells [2]experiments.Result
		for i, dev := range []string{"gpu", "cpu"} {
			var err error
			if cells[i], err = deviceCell(t, dir, data, method, dev, method+"-"+dev); err != nil {
				t.Fatalf("%s on the %s: %v", method, dev, err)
			}
		}
		g, c := cells[0], cells[1]
		if !strings.Contains(g.Device, "GPU") || strings.Contains(c.Device, "GPU") {
			t.Errorf("%s: devices %q and %q", method, g.Device, c.Device)
		}
		sameCell(t, method, g, c, false)
	}
}

// gpuOrSkip skips a test without a GPU or the CPU emulator.
func gpuOrSkip(t *testing.T) {
	t.Helper()
	if os.Getenv("SOFTPATCH_LIBCUDA") == "" {
		d, err := cuda.Open(0)
		if err != nil {
			t.Skipf("no GPU: %v", err)
		}
		d.Close()
	}
}

// deviceCell runs eval on --device dev for method (noise 0.2 with overlap,
// 64 px, coreset 0.25) on the nutClass data, writing dir/name.json.
func deviceCell(t *testing.T, dir, data, method, dev, name string) (experiments.Result, error) {
	out := filepath.Join(dir, name+".json")
	err := runEval([]string{"--data", data, "--class", "nut", "--method", method, "--noise", "0.2", "--overlap",
		"--resize", "72", "--imagesize", "64", "--coreset", "0.25", "--device", dev, "--json", out})
	if err != nil {
		return experiments.Result{}, err
	}
	return readCell(t, out), nil
}

// sameCell checks that cell g has c's bank and image scores (exactly when
// exact is set, else within 1e-4 relative: the backbone's float32
// differences) and pixel AUROC within 1e-3.
func sameCell(t *testing.T, name string, g, c experiments.Result, exact bool) {
	t.Helper()
	if g.BankSize != c.BankSize || len(g.PerImage) != len(c.PerImage) {
		t.Fatalf("%s: bank %d vs %d, %d vs %d images", name, g.BankSize, c.BankSize, len(g.PerImage), len(c.PerImage))
	}
	for i := range g.PerImage {
		a, b := float64(g.PerImage[i].Score), float64(c.PerImage[i].Score)
		if math.Abs(a-b) > 1e-4*math.Max(1, math.Abs(b)) || (exact && a != b) {
			t.Errorf("%s image %d: score %v, CPU %v", name, i, a, b)
		}
	}
	if math.Abs(g.PixelAUROC-c.PixelAUROC) > 1e-3 {
		t.Errorf("%s: pixel AUROC %v, CPU %v", name, g.PixelAUROC, c.PixelAUROC)
	}
}

// TestEvalGPUFallback makes one GPU kernel fail on the CPU emulator
// ($SOFTPATCH_EMULATOR_FAIL) in each stage that has a fallback: with
// --device auto the cell completes, its device says where the GPU failed,
// and its scores are the CPU's cell's (to the backbone's float32
// differences, or exactly once the features came from the CPU); with
// --device gpu the cell fails and names the kernel. It needs the emulator
// (make test-emulated).
func TestEvalGPUFallback(t *testing.T) {
	if os.Getenv("SOFTPATCH_LIBCUDA") == "" {
		t.Skip("needs the CPU emulator of the driver (make test-emulated)")
	}
	dir, data := nutClass(t, 8, 2, 3)
	cpu, err := deviceCell(t, dir, data, "softpatch-lof", "cpu", "cpu")
	if err != nil {
		t.Fatal(err)
	}
	for stage, kernel := range map[string]string{
		"features": "unfold_pool", "discriminator": "lof_knn", "coreset": "coreset_step", "scoring": "top1_tile", "maps": "gauss_rows",
	} {
		t.Setenv("SOFTPATCH_EMULATOR_FAIL", kernel)
		g, err := deviceCell(t, dir, data, "softpatch-lof", "auto", stage)
		if err != nil {
			t.Fatalf("%s (%s failing) with --device auto: %v", stage, kernel, err)
		}
		if !strings.Contains(g.Device, "until it failed ("+stage+":") || !strings.Contains(g.Device, kernel) {
			t.Errorf("%s: device %q", stage, g.Device)
		}
		sameCell(t, stage, g, cpu, stage == "features")
		if _, err := deviceCell(t, dir, data, "softpatch-lof", "gpu", stage+"-strict"); err == nil || !strings.Contains(err.Error(), kernel) {
			t.Errorf("%s (%s failing) with --device gpu: err = %v", stage, kernel, err)
		}
	}
}

// cflowSets are a short CFLOW schedule for the 64 px test class: two
// layers, two blocks, small batches.
var cflowSets = []string{"--set", "cflow.meta_epochs=2", "--set", "cflow.sub_epochs=2", "--set", "cflow.warm_epochs=1",
	"--set", "cflow.coupling_blocks=2", "--set", "cflow.condition_dim=8", "--set", "cflow.fiber_batch=32",
	"--set", "cflow.image_batch=4", "--set", "cflow.layers=[layer2,layer3]"}

// cflowCell runs eval of CFLOW on --device dev (noise 0.2 with overlap,
// 64 px) on the nutClass data, writing dir/name.json.
func cflowCell(t *testing.T, dir, data, dev, name string) (experiments.Result, error) {
	out := filepath.Join(dir, name+".json")
	args := append([]string{"--data", data, "--class", "nut", "--method", "cflow", "--noise", "0.2", "--overlap",
		"--resize", "72", "--imagesize", "64", "--device", dev, "--json", out}, cflowSets...)
	if err := runEval(args); err != nil {
		return experiments.Result{}, err
	}
	return readCell(t, out), nil
}

// TestEvalCflowOnGPU trains and scores a short-schedule CFLOW cell with
// --device gpu and with --device cpu: the GPU's flow (cuda.Flow) equals
// the CPU graph's to float32 rounding, and Adam turns a gradient that is
// rounding noise into a step of the learning rate either way, so the
// image scores agree to 1e-3 relative, not bit for bit. It needs a GPU or
// the CPU emulator of the driver; it skips otherwise. With a kernel of
// the flow made to fail ($SOFTPATCH_EMULATOR_FAIL, emulator only),
// --device auto trains again on the CPU and --device gpu fails.
func TestEvalCflowOnGPU(t *testing.T) {
	gpuOrSkip(t)
	dir, data := nutClass(t, 8, 2, 3)
	g, err := cflowCell(t, dir, data, "gpu", "gpu")
	if err != nil {
		t.Fatal(err)
	}
	c, err := cflowCell(t, dir, data, "cpu", "cpu")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(g.Device, "GPU") || strings.Contains(g.Device, "failed") || strings.Contains(c.Device, "GPU") {
		t.Errorf("devices %q and %q", g.Device, c.Device)
	}
	cflowClose(t, "gpu", g, c)
	if os.Getenv("SOFTPATCH_LIBCUDA") == "" {
		return
	}
	t.Setenv("SOFTPATCH_EMULATOR_FAIL", "flow_coupling")
	a, err := cflowCell(t, dir, data, "auto", "auto")
	if err != nil {
		t.Fatalf("flow_coupling failing with --device auto: %v", err)
	}
	if !strings.Contains(a.Device, "until it failed (cflow:") || !strings.Contains(a.Device, "flow_coupling") {
		t.Errorf("device %q", a.Device)
	}
	cflowClose(t, "fallback", a, c)
	if _, err := cflowCell(t, dir, data, "gpu", "strict"); err == nil || !strings.Contains(err.Error(), "flow_coupling") {
		t.Errorf("flow_coupling failing with --device gpu: err = %v", err)
	}
}

// cflowClose checks that CFLOW cell g has c's image scores within 1e-3
// relative and its AUROCs within 1e-2, and logs the largest difference.
func cflowClose(t *testing.T, name string, g, c experiments.Result) {
	t.Helper()
	if len(g.PerImage) != len(c.PerImage) {
		t.Fatalf("%s: %d vs %d images", name, len(g.PerImage), len(c.PerImage))
	}
	worst := 0.0
	for i := range g.PerImage {
		a, b := float64(g.PerImage[i].Score), float64(c.PerImage[i].Score)
		e := math.Abs(a-b) / math.Max(1e-6, math.Abs(b))
		worst = max(worst, e)
		if e > 1e-3 {
			t.Errorf("%s image %d: score %v, CPU %v", name, i, a, b)
		}
	}
	t.Logf("%s: image scores' largest relative difference %.2g; image AUROC %v (CPU %v), pixel %v (CPU %v)",
		name, worst, g.ImageAUROC, c.ImageAUROC, g.PixelAUROC, c.PixelAUROC)
	if math.Abs(g.ImageAUROC-c.ImageAUROC) > 1e-2 || math.Abs(g.PixelAUROC-c.PixelAUROC) > 1e-2 {
		t.Errorf("%s: AUROCs %v/%v, CPU %v/%v", name, g.ImageAUROC, g.PixelAUROC, c.ImageAUROC, c.PixelAUROC)
	}
}
