// Command softpatch is the SoftPatch research harness: patch embeddings,
// detectors and the paper's experiments from one binary.
//
//	softpatch VERB [flags] ARGS
//
// Run "softpatch help" for the verbs and "softpatch VERB -h" for each
// verb's flags and an example.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
)

// verb is one subcommand.
type verb struct {
	name, summary string
	run           func(args []string) error
}

func verbs() []verb {
	return []verb{
		{"embed", "write PatchCore patch embeddings of images to a .npy file", runEmbed},
		{"data", "inspect a dataset or print its (noisy) train/test split", runData},
		{"synth", "write the generated dataset in the MVTec AD layout", runSynth},
		{"run", "run a sweep from a YAML config (resumable; --dry-run shows the plan)", runRun},
		{"report", "tables of a sweep's results (Markdown, CSV, terminal)", runReport},
		{"eval", "fit and evaluate one detector on one class (one cell), metrics as JSON", runEval},
		{"fit", "fit a detector on a class and save the model to one file", runFit},
		{"predict", "score images with a saved model: scores JSON, maps .npy, overlay PNGs", runPredict},
		{"weights", "inspect a torchvision checkpoint (weights inspect FILE)", runWeights},
		{"bench", "measure the feature extractor, the coreset or PaDiM (bench features|coreset|padim)", runBench},
		{"version", "print version, commit, BLAS and threads", runVersion},
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: softpatch VERB [flags] ARGS\n\nverbs:")
	for _, v := range verbs() {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", v.name, v.summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'softpatch VERB -h' for a verb's flags and an example.")
}

// gcPercent is the collector's GOGC setting unless the environment sets
// GOGC or GOMEMLIMIT. The large arrays (features, projections, maps) hold
// no pointers, so a collection costs little, and at 25 the heap stays
// within 1.25 times the live data instead of Go's default 2 times: on a
// BTAD-sized class that is gigabytes of resident memory.
const gcPercent = 25

func main() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if len(os.Args) < 2 || os.Args[1] == "help" || os.Args[1] == "-h" || os.Args[1] == "--help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	for _, v := range verbs() {
		if v.name == os.Args[1] {
			err := v.run(os.Args[2:])
			if errors.Is(err, flag.ErrHelp) {
				return
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "softpatch:", err)
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "softpatch: unknown verb %q\n\n", os.Args[1])
	usage()
	os.Exit(2)
}

// newFlags returns a verb's flag set whose -h output shows the usage line
// and an example.
func newFlags(name, usageLine, example string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: softpatch %s\n\nexample:\n  %s\n\nflags:\n", usageLine, example)
		fs.PrintDefaults()
	}
	return fs
}

// subverb checks that args start with the one sub-verb a verb has; -h and
// help print usageLine and count as asking for help.
func subverb(args []string, name, usageLine string) error {
	if len(args) > 0 && args[0] == name {
		return nil
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintf(os.Stderr, "usage: softpatch %s\n", usageLine)
		return flag.ErrHelp
	}
	return fmt.Errorf("usage: softpatch %s", usageLine)
}
