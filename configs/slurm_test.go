package configs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSlurmScript runs slurm.sh as an array task would, with a stand-in
// softpatch that prints its arguments: the shard comes from the task's
// index and the array's size, arguments after OUT_DIR pass through, a
// rerun of some tasks needs SOFTPATCH_SHARDS, and an index beyond the
// shards is refused.
func TestSlurmScript(t *testing.T) {
	bin := t.TempDir()
	fake := "#!/bin/sh\necho \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "softpatch"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(env ...string) (string, error) {
		cmd := exec.Command("bash", "slurm.sh", "c.yaml", "out", "--set", "run.cache_dir=/shared/cache")
		cmd.Env = append([]string{"PATH=" + bin + ":" + os.Getenv("PATH")}, env...)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	for _, c := range []struct {
		env  []string
		want string // the arguments softpatch gets, or a part of the error
		ok   bool
	}{
		{[]string{"SLURM_ARRAY_TASK_ID=2", "SLURM_ARRAY_TASK_COUNT=3", "SLURM_ARRAY_TASK_MIN=0", "SLURM_CPUS_PER_TASK=4"},
			"run c.yaml --out out --shard 2/3 --set run.threads=4 --set run.cache_dir=/shared/cache", true},
		{[]string{"SLURM_ARRAY_TASK_ID=0", "SLURM_ARRAY_TASK_COUNT=1", "SLURM_ARRAY_TASK_MIN=0"},
			"run c.yaml --out out --shard 0/1 --set run.threads=0 --set run.cache_dir=/shared/cache", true},
		// A rerun of task 1 of a 3-task sweep: its own array has one task.
		{[]string{"SLURM_ARRAY_TASK_ID=1", "SLURM_ARRAY_TASK_COUNT=1", "SLURM_ARRAY_TASK_MIN=1"}, "SOFTPATCH_SHARDS", false},
		{[]string{"SLURM_ARRAY_TASK_ID=1", "SLURM_ARRAY_TASK_COUNT=1", "SLURM_ARRAY_TASK_MIN=1", "SOFTPATCH_SHARDS=3"},
			"run c.yaml --out out --shard 1/3 --set run.threads=0 --set run.cache_dir=/shared/cache", true},
		{[]string{"SLURM_ARRAY_TASK_ID=3", "SLURM_ARRAY_TASK_COUNT=1", "SLURM_ARRAY_TASK_MIN=3", "SOFTPATCH_SHARDS=3"}, "task 3 of a sweep in 3 shards", false},
		{nil, "run it with sbatch --array", false},
	} {
		out, err := run(c.env...)
		if (err == nil) != c.ok || !strings.Contains(out, c.want) || c.ok && out != c.want {
			t.Errorf("%v: %q (%v), want %q", c.env, out, err, c.want)
		}
	}
}
