package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/softpatch/softpatch/datasets"
)

const dataUsage = "data inspect|split [flags]"

// runData is the "data" verb: "data inspect" summarises a dataset,
// "data split" prints the (noisy) train and test lists of one class.
func runData(args []string) error {
	return runDataTo(os.Stdout, args)
}

func runDataTo(w io.Writer, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "inspect":
			return dataInspect(w, args[1:])
		case "split":
			return dataSplit(w, args[1:])
		case "-h", "--help", "help":
			fmt.Fprintf(os.Stderr, "usage: softpatch %s\n", dataUsage)
			return flag.ErrHelp
		}
	}
	return fmt.Errorf("usage: softpatch %s", dataUsage)
}

// layoutFlags are the dataset-layout flags of the data verbs.
type layoutFlags struct {
	format, normal, suffix, splitFile *string
}

// registerLayout adds the layout flags to fs.
func registerLayout(fs *flag.FlagSet) layoutFlags {
	return layoutFlags{
		format: fs.String("format", "", "layout: "+strings.Join(datasets.FormatNames()[1:], ", ")+
			" (default: detect from train/good, train/ok, train/good with validation or test_public, Data/Images, OK or NG; see docs/datasets.md)"),
		normal:    fs.String("normal", "", "folder layout: name of the normal folder (default good)"),
		suffix:    fs.String("mask-suffix", "", "folder layout: mask file suffix before the extension (default _mask; none: the image's own stem)"),
		splitFile: fs.String("split-file", "", splitFileHelp),
	}
}

// splitFileHelp is the help of --split-file, shared with the cell flags.
const splitFileHelp = "visa: the split CSV (default ROOT/split_csv/1cls.csv); realiad: the split JSON, or a folder of CLASS.json files such as realiad_jsons_fuiad_0.1 (default ROOT/../realiad_jsons/CLASS.json)"

// layout checks the flags' combination and returns the layout.
func (lf layoutFlags) layout() (datasets.Layout, error) {
	f, err := datasets.ParseFormat(*lf.format)
	if err != nil {
		return datasets.Layout{}, err
	}
	l := datasets.Layout{Format: f, Normal: *lf.normal, MaskSuffix: *lf.suffix, SplitFile: *lf.splitFile}
	if err := l.Check(); err != nil {
		return l, fmt.Errorf("--format %s with --normal, --mask-suffix or --split-file: %w", f, err)
	}
	return l, nil
}

func dataInspect(w io.Writer, args []string) error {
	fs := newFlags("data inspect", "data inspect --data ROOT [--format "+strings.Join(datasets.FormatNames()[1:], "|")+"] [--split-file F] [--class C] [--json]",
		"softpatch data inspect --data ./mvtec --class bottle")
	root := fs.String("data", "", "dataset root (required)")
	class := fs.String("class", "", "only this class (default: all)")
	asJSON := fs.Bool("json", false, "print a JSON list of class summaries")
	quick := fs.Bool("quick", false, "read only file headers instead of decoding every image and mask (misses truncated files)")
	lf := registerLayout(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *root == "" || fs.NArg() > 0 {
		return fmt.Errorf("data inspect: --data ROOT is required and takes no arguments")
	}
	l, err := lf.layout()
	if err != nil {
		return err
	}
	classes := []string{*class}
	if *class == "" {
		if classes, err = datasets.Classes(*root, l); err != nil {
			return err
		}
	}
	var out []datasets.Summary
	failed := 0
	for _, name := range classes {
		c, err := datasets.Load(*root, name, l, datasets.LoadOptions{SkipBad: true, Verify: !*quick})
		if err != nil {
			if *class != "" {
				return err
			}
			out = append(out, datasets.Summary{Class: name, Error: err.Error()})
			failed++
			continue
		}
		out = append(out, datasets.Summarize(c))
	}
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		for i, s := range out {
			if i > 0 {
				fmt.Fprintln(w)
			}
			s.WriteText(w)
		}
	}
	if failed > 0 {
		return fmt.Errorf("data inspect: %d of %d classes could not be loaded (see above)", failed, len(classes))
	}
	problems := 0
	for _, s := range out {
		problems += len(s.Problems)
	}
	if problems > 0 {
		return fmt.Errorf("data inspect: problems found: %d (see above; --skip-bad leaves those files out)", problems)
	}
	return nil
}

// splitResult is what "data split --json" prints; paths are relative to ROOT.
type splitResult struct {
	Root    string             `json:"root"`
	Class   string             `json:"class"`
	Dataset string             `json:"dataset"`
	Noise   datasets.Noise     `json:"noise"`
	Train   []string           `json:"train"`
	Test    []string           `json:"test"`
	Drawn   []string           `json:"drawn"`
	Skipped []datasets.Problem `json:"skipped,omitempty"`
}

func dataSplit(w io.Writer, args []string) error {
	fs := newFlags("data split", "data split --data ROOT --class C --noise 0.1 [--overlap] [--fold 0] [--noise-list FILE] [--json]",
		"softpatch data split --data ./mvtec --class bottle --noise 0.1 --fold 0 --write-noise-list noise.json")
	root := fs.String("data", "", "dataset root (required)")
	class := fs.String("class", "", "class (required)")
	ratio := fs.Float64("noise", 0, fmt.Sprintf("noise ratio r: floor(r * n_train) anomalous test images join training "+
		"(without --overlap capped to keep %d%% of the class's anomalous images, at least one, in the test set; with it, resampled copies with a small affine beyond them)",
		datasets.NoiseReservePercent))
	overlap := fs.Bool("overlap", false, "keep the drawn images in the test set too")
	fold := fs.Int("fold", 0, "fold: names an independent draw")
	dataset := fs.String("dataset", "", "dataset name in the draw's seed (default: the layout, e.g. mvtec)")
	list := fs.String("noise-list", "", "JSON list of files (relative to ROOT) to inject instead of drawing")
	writeList := fs.String("write-noise-list", "", "write the drawn files to this JSON file")
	augment := fs.Bool("augment", false, "give each injected image its own seeded random affine (the published --noise_augmentation)")
	skipBad := fs.Bool("skip-bad", false, "skip unusable files (listed) instead of failing")
	asJSON := fs.Bool("json", false, "print JSON")
	lf := registerLayout(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *root == "" || *class == "" || fs.NArg() > 0 {
		return fmt.Errorf("data split: --data ROOT and --class C are required and it takes no arguments")
	}
	l, err := lf.layout()
	if err != nil {
		return err
	}
	c, err := datasets.Load(*root, *class, l, datasets.LoadOptions{SkipBad: *skipBad})
	if err != nil {
		return err
	}
	n := datasets.Noise{Ratio: *ratio, Overlap: *overlap, Fold: *fold, Augment: *augment}
	if *list != "" {
		if flagGiven(fs, "noise") {
			return fmt.Errorf("data split: give either --noise or --noise-list, not both")
		}
		if n.Files, err = datasets.ReadNoiseList(*list); err != nil {
			return err
		}
		n.Ratio = 0 // the list replaces the draw; an empty list injects nothing
	}
	ds := *dataset
	if ds == "" {
		ds = string(c.Format)
	}
	in, err := c.Inject(ds, n)
	if err != nil {
		return err
	}
	train, test, drawn := in.Train, in.Test, in.Drawn
	if *writeList != "" {
		if err := datasets.WriteNoiseList(*writeList, c.Root, drawn); err != nil {
			return err
		}
	}
	res := splitResult{Root: c.Root, Class: c.Name, Dataset: ds, Noise: in.Noise, Train: datasets.RelPaths(c.Root, train),
		Test: datasets.RelPaths(c.Root, test), Drawn: datasets.RelPaths(c.Root, drawn), Skipped: c.Problems}
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	mode := "no overlap"
	if n.Overlap {
		mode = "overlap"
	}
	src := fmt.Sprintf("ratio %g, fold %d, seed (%s, %s)", n.Ratio, n.Fold, ds, c.Name)
	if *list != "" {
		src = "list " + *list
	}
	fmt.Fprintf(w, "class %s under %s: %s, %s\n", c.Name, c.Root, src, mode)
	if q := in.Noise.Requested; q > 0 {
		fmt.Fprintf(w, "asked for %d anomalous images, the class has %d: injected %d, kept %d in the test set\n",
			q, in.Anomalous, len(drawn), in.Anomalous-len(drawn))
	}
	if r := in.Noise.Resampled; r > 0 {
		how := "a small affine"
		if n.Augment {
			how = "the noise augmentation's affine"
		}
		if *list == "" {
			fmt.Fprintf(w, "asked for %d anomalous images, the class has %d: injected each once and %d resampled copies with %s\n",
				len(drawn), in.Anomalous, r, how)
		} else {
			fmt.Fprintf(w, "the list repeats images: %d resampled copies with %s\n", r, how)
		}
	}
	fromFile := 0 // anomalous training images of a split file (Real-IAD FUIAD)
	for _, it := range c.Train {
		if it.Anomalous {
			fromFile++
		}
	}
	if fromFile > 0 {
		fmt.Fprintf(w, "train: %d (%d clean + %d anomalous from the split file + %d drawn)\n", len(train), len(c.Train)-fromFile, fromFile, len(drawn))
	} else {
		fmt.Fprintf(w, "train: %d (%d clean + %d drawn)\n", len(train), len(c.Train), len(drawn))
	}
	for i, it := range train {
		mark := ""
		if i < len(c.Train) && it.Anomalous {
			mark = "  [anomalous, from the split file]"
		}
		if i >= len(c.Train) {
			mark = "  [noise]"
			if a := it.Augment; a != nil {
				mark = fmt.Sprintf("  [noise, affine: %.1f deg, shift %+.3f %+.3f, scale %.3f, shear %.1f deg]", a.Angle, a.TX, a.TY, a.Scale, a.ShearX)
			}
		}
		fmt.Fprintf(w, "  %s%s\n", datasets.RelPath(c.Root, it), mark)
	}
	fmt.Fprintf(w, "drawn: %d\n", len(drawn))
	for _, s := range res.Drawn {
		fmt.Fprintf(w, "  %s\n", s)
	}
	fmt.Fprintf(w, "test: %d\n", len(test))
	for _, it := range test {
		label := "normal"
		if it.Anomalous {
			label = "anomalous"
		}
		fmt.Fprintf(w, "  %-*s  %s\n", maxLen(res.Test), datasets.RelPath(c.Root, it), label)
	}
	for _, p := range c.Problems {
		fmt.Fprintf(w, "skipped: %s: %s\n", p.Path, p.Reason)
	}
	return nil
}

func maxLen(ss []string) int {
	n := 0
	for _, s := range ss {
		n = max(n, len(s))
	}
	return n
}
