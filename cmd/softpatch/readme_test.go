package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain runs the command itself when the test binary is started under
// the name softpatch (TestREADMECommands puts such a link on $PATH), so
// that the README's command lines run through a real shell against this
// package's code.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "softpatch" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// softpatchDir links this test binary into dir under the name softpatch
// (see TestMain) and returns dir.
func softpatchDir(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(dir, "softpatch")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// readmeCommands classifies every command line of the README's sh blocks,
// in the order TestREADMECommands runs them: an empty reason runs it as
// written, any other reason says what it needs that a test cannot have.
var readmeCommands = []struct{ line, needs string }{
	{"make demo", "make: the quickstart sweep, 3.5 min; its pieces are run here and by TestRunResumes"},
	{"make test", "make: the command running this test"},
	{"softpatch run configs/paper/mvtec_noise0.1.yaml --set dataset.root=~/data/mvtec --out runs/mvtec", "MVTec AD"},
	{"softpatch run configs/paper/image_vs_patch_denoising.yaml --set dataset.root=~/data/mvtec", "MVTec AD"},
	{"softpatch run configs/quickstart.yaml --dry-run", ""},
	{"softpatch run CONFIG --shard 0/4 ...", "a config of the user's (a pattern, not a command)"},
	{"softpatch report runs/mvtec", "the results of the MVTec AD sweep"},
	{"job=$(sbatch --parsable --array=0-15 configs/slurm.sh configs/paper/mvtec_noise0.1.yaml /shared/runs/mvtec --set run.cache_dir=/shared/cache)",
		"a Slurm cluster and MVTec AD (make slurm-check runs configs/slurm.sh on a one-node cluster; configs' TestSlurmScript without one)"},
	{`sbatch --dependency=afterok:$job --wrap "softpatch report /shared/runs/mvtec"`, "a Slurm cluster (see the line above)"},
	{"softpatch synth --out data/synth", ""},
	{"softpatch data inspect --data data/synth", ""},
	{"softpatch eval --data data/synth --class wood --method softpatch-lof --noise 0.1 --overlap --json wood.json", ""},
	{"softpatch fit --data data/synth --class wood --method softpatch-lof --noise 0.1 --out wood.model", ""},
	{"softpatch predict --model wood.model --out pred/ data/synth/wood/test/color/*.png", ""},
	{"softpatch data inspect --data ~/data/mvtec --class bottle", "MVTec AD"},
	{"softpatch data split --data ~/data/mvtec --class bottle --noise 0.1 --fold 0 --write-noise-list noise.json", "MVTec AD"},
	{"softpatch data split --data ~/data/mvtec --class bottle --noise-list their_draw.json --overlap", "MVTec AD and a published noise list"},
	{"softpatch weights inspect ~/.cache/torch/hub/checkpoints/wide_resnet50_2-95faca4d.pth", "a torchvision checkpoint"},
	{"softpatch embed --weights wide_resnet50_2-95faca4d.pth --out feats.npy images/*.png", "a torchvision checkpoint and the user's images"},
	{`python3 -c "import numpy; print(numpy.load('feats.npy').shape)"`, "Python with numpy, and the embed output above"},
	{"softpatch synth --out data/synth-200 --classes wood,pill --test-good 30 --test-defect 50", ""},
	{"softpatch eval --data data/synth-200 --class wood --method padim --noise 0.1 --overlap --json padim.json", ""},
	{"softpatch eval --data data/synth-200 --class wood --method patchcore --filter padim:0.1 --noise 0.1 --overlap --json pp.json", ""},
	{"softpatch fit --data data/synth-200 --class wood --method padim --out wood.padim", ""},
	{"softpatch eval --data data/synth --class wood --method cflow --set cflow.meta_epochs=2 --set cflow.sub_epochs=1 --set cflow.warm_epochs=1 --json cflow.json",
		"CFLOW training, about 10 minutes on 2 cores (experiments/runner's TestCFLOWCellAndPredict runs a cell at 64 px)"},
	{"softpatch run configs/cflow_quick.yaml", "CFLOW training, about half an hour on 2 cores (its config decodes in configs' test)"},
	{"make emulator", "make: run by make test-emulated"},
	{"export SOFTPATCH_LIBCUDA=$PWD/build/emulator/libcuda.so.1 SOFTPATCH_CUBLAS=$PWD/build/emulator/libcuda.so.1", "the emulator built by make"},
	{"bin/softpatch version", "the emulator built by make (its GPU path is tested by make test-emulated)"},
}

// readmeLines returns the command lines of the sh blocks in README.md,
// comments and blank lines dropped.
func readmeLines(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "```"):
			in = l == "```sh"
			continue
		case !in:
			continue
		}
		if i := strings.Index(l, " #"); i >= 0 {
			l = l[:i]
		}
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestREADMECommands runs, as written and through sh, every command of the
// README that needs nothing from outside the repository, in an empty
// folder holding a copy of configs/, without weights (random-init
// backbone), each one in turn so that later ones read what earlier ones
// wrote. Every README command must be listed in readmeCommands, and every
// entry there must still be in the README.
func TestREADMECommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the README's commands (about 4 minutes on 2 cores)")
	}
	inREADME := map[string]bool{}
	for _, l := range readmeLines(t) {
		inREADME[l] = true
	}
	known := map[string]bool{}
	for _, c := range readmeCommands {
		known[c.line] = true
		if !inREADME[c.line] {
			t.Errorf("listed but not in README.md any more: %s", c.line)
		}
	}
	for l := range inREADME {
		if !known[l] {
			t.Errorf("README.md command not classified in readmeCommands: %s", l)
		}
	}
	if t.Failed() {
		return
	}

	home := withoutWeights(t)
	work := filepath.Join(home, "work")
	bin := filepath.Join(home, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(work, "configs"), os.DirFS("../../configs")); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+softpatchDir(t, bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, c := range readmeCommands {
		if c.needs != "" {
			t.Logf("not run (needs %s): %s", c.needs, c.line)
			continue
		}
		t0 := time.Now()
		cmd := exec.Command("sh", "-c", c.line)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.line, err, out)
		}
		t.Logf("ran in %.1f s: %s", time.Since(t0).Seconds(), c.line)
	}
	for _, f := range []string{"wood.json", "wood.model", "pred/scores.json", "padim.json", "pp.json", "wood.padim"} {
		if _, err := os.Stat(filepath.Join(work, f)); err != nil {
			t.Errorf("a README command did not write %s: %v", f, err)
		}
	}
}
