package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/softpatch/softpatch/datasets/synth"
)

// TestEvalOnGPU runs one cell of every detector family with --device gpu
// and with --device cpu and compares them: the same bank and image scores
// up to the backbone's float32 differences (im2col + SGEMM against the
// CPU's convolutions), every later stage bit for bit with its CPU
// counterpart. It needs a GPU or the CPU emulator of the driver
// (SOFTPATCH_LIBCUDA, as make test-emulated sets it); it skips otherwise.
func TestEvalOnGPU(t *testing.T) {
	if os.Getenv("SOFTPATCH_LIBCUDA") == "" {
		if _, err := openDevice("gpu"); err != nil {
			t.Skipf("no GPU: %v", err)
		}
	}
	dir := withoutWeights(t)
	data := filepath.Join(dir, "data")
	if err := synth.Generate(data, synth.Config{Classes: []string{"nut"}, Size: 64, Train: 8, TestGood: 2, TestDefect: 3}, nil); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"softpatch-lof", "softpatch-gaussian", "patchcore", "padim+softpatch-nearest"} {
		var cells [2]evalResult
		for i, dev := range []string{"gpu", "cpu"} {
			out := filepath.Join(dir, method+"-"+dev+".json")
			err := runEval([]string{"--data", data, "--class", "nut", "--method", method, "--noise", "0.2", "--overlap",
				"--resize", "72", "--imagesize", "64", "--coreset", "0.25", "--device", dev, "--json", out})
			if err != nil {
				t.Fatalf("%s on the %s: %v", method, dev, err)
			}
			cells[i] = readCell(t, out)
		}
		g, c := cells[0], cells[1]
		if !strings.Contains(g.Device, "GPU") || strings.Contains(c.Device, "GPU") {
			t.Errorf("%s: devices %q and %q", method, g.Device, c.Device)
		}
		if g.BankSize != c.BankSize || len(g.PerImage) != len(c.PerImage) {
			t.Fatalf("%s: bank %d vs %d, %d vs %d images", method, g.BankSize, c.BankSize, len(g.PerImage), len(c.PerImage))
		}
		for i := range g.PerImage {
			a, b := float64(g.PerImage[i].Score), float64(c.PerImage[i].Score)
			if math.Abs(a-b) > 1e-4*math.Max(1, math.Abs(b)) {
				t.Errorf("%s image %d: score %v on the GPU, %v on the CPU", method, i, a, b)
			}
		}
		if math.Abs(g.PixelAUROC-c.PixelAUROC) > 1e-3 {
			t.Errorf("%s: pixel AUROC %v on the GPU, %v on the CPU", method, g.PixelAUROC, c.PixelAUROC)
		}
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
	dir := withoutWeights(t)
	data := filepath.Join(dir, "data")
	if err := synth.Generate(data, synth.Config{Classes: []string{"nut"}, Size: 64, Train: 8, TestGood: 2, TestDefect: 3}, nil); err != nil {
		t.Fatal(err)
	}
	cell := func(dev, fail, name string) (evalResult, error) {
		t.Setenv("SOFTPATCH_EMULATOR_FAIL", fail)
		out := filepath.Join(dir, name+".json")
		err := runEval([]string{"--data", data, "--class", "nut", "--method", "softpatch-lof", "--noise", "0.2", "--overlap",
			"--resize", "72", "--imagesize", "64", "--coreset", "0.25", "--device", dev, "--json", out})
		if err != nil {
			return evalResult{}, err
		}
		return readCell(t, out), nil
	}
	cpu, err := cell("cpu", "", "cpu")
	if err != nil {
		t.Fatal(err)
	}
	for stage, kernel := range map[string]string{
		"features": "unfold_pool", "discriminator": "lof_knn", "coreset": "coreset_step", "scoring": "top1_tile", "maps": "gauss_rows",
	} {
		g, err := cell("auto", kernel, stage)
		if err != nil {
			t.Fatalf("%s (%s failing) with --device auto: %v", stage, kernel, err)
		}
		if !strings.Contains(g.Device, "until it failed ("+stage+":") || !strings.Contains(g.Device, kernel) {
			t.Errorf("%s: device %q", stage, g.Device)
		}
		if g.BankSize != cpu.BankSize || len(g.PerImage) != len(cpu.PerImage) {
			t.Fatalf("%s: bank %d vs %d", stage, g.BankSize, cpu.BankSize)
		}
		for i := range g.PerImage {
			a, b := float64(g.PerImage[i].Score), float64(cpu.PerImage[i].Score)
			if math.Abs(a-b) > 1e-4*math.Max(1, math.Abs(b)) || (stage == "features" && a != b) {
				t.Errorf("%s: image %d score %v, CPU %v", stage, i, a, b)
			}
		}
		if _, err := cell("gpu", kernel, stage+"-strict"); err == nil || !strings.Contains(err.Error(), kernel) {
			t.Errorf("%s (%s failing) with --device gpu: err = %v", stage, kernel, err)
		}
	}
}
