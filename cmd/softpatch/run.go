package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/softpatch/softpatch/experiments"
	"github.com/softpatch/softpatch/experiments/runner"
	"github.com/softpatch/softpatch/reports"
)

// setFlags collects repeated --set key=value flags.
type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, " ") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

// runHook, when set (tests), is called after each finished cell; an error
// stops the sweep as a crash would.
var runHook func(done int) error

func runRun(args []string) error {
	fs := newFlags("run", "run CONFIG [--set key=value ...] [--out DIR] [--shard i/n] [--dry-run]",
		"softpatch run configs/quickstart.yaml --set noise.ratios=[0,0.1] --out runs/quick")
	var sets setFlags
	fs.Var(&sets, "set", "override a config value, key.path=YAML value (repeatable)")
	out := fs.String("out", "", "results folder (default: runs/<config name>)")
	shardFlag := fs.String("shard", "", "run only shard i of n (0 <= i < n): every n-th cell")
	dry := fs.Bool("dry-run", false, "print the planned cells and which are done, run nothing")
	redo := fs.Bool("redo-changed", false, "rerun the stored cells that were computed with other settings (default: refuse to mix them)")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("run: want one CONFIG file, got %d arguments", fs.NArg())
	}
	cfg, err := experiments.LoadConfig(fs.Arg(0), sets)
	if err != nil {
		return err
	}
	shard, err := experiments.ParseShard(*shardFlag)
	if err != nil {
		return err
	}
	dir := *out
	if dir == "" {
		name := cfg.Name
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(fs.Arg(0)), filepath.Ext(fs.Arg(0)))
		}
		dir = filepath.Join("runs", name)
	}
	if *dry {
		plan, err := runner.PlanSweep(cfg, dir, shard, *redo)
		if err != nil {
			return err
		}
		states := map[string]int{}
		for _, c := range plan.Cells {
			states[plan.State(c)]++
			fmt.Printf("%-7s %s\n", plan.State(c), c.Key())
		}
		fmt.Printf("%d cells in shard %d/%d: %d done, %d with other settings, %d to run -> %s\n", len(plan.Cells), shard.Index, shard.N,
			states["done"], len(plan.Changed), len(plan.Todo), dir)
		for _, d := range plan.Changes {
			fmt.Println("  changed:", d)
		}
		if len(plan.ShardCosts) > 0 {
			fmt.Print("estimated seconds per shard (balanced by cost; a class's features counted in every shard that runs it):")
			for i, c := range plan.ShardCosts {
				fmt.Printf(" %d: %.0f", i, c)
			}
			fmt.Println()
		}
		return nil
	}
	plan, err := runner.Sweep(cfg, runner.SweepOptions{Dir: dir, Shard: shard, Out: os.Stdout, AfterCell: runHook, RedoChanged: *redo})
	if errors.Is(err, runner.ErrDatasetMissing) && plan != nil && len(plan.Done) > 0 {
		// The stored cells still report, and the error says why nothing ran.
		if rerr := reports.Write(dir, os.Stdout, reports.Options{}); rerr != nil {
			return rerr
		}
		return fmt.Errorf("%w: reported the %d stored cells of %s, ran nothing", err, len(plan.Done), dir)
	}
	if err != nil {
		return err
	}
	if len(plan.Todo) == 0 {
		fmt.Printf("all %d cells done -> %s\n", len(plan.Cells), dir)
	} else {
		fmt.Printf("%d cells run, %d done before -> %s\n", len(plan.Todo), len(plan.Cells)-len(plan.Todo), dir)
	}
	return reports.Write(dir, os.Stdout, reports.Options{})
}

// reorder moves the positional arguments after the flags, so that
// "run CONFIG --set x=y" parses as "run --set x=y CONFIG".
func reorder(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		}
	}
	return append(flags, pos...)
}
