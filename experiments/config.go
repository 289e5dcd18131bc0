package experiments

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/engine/embed"
)

// Config is one sweep: which data, which backbone, which noise settings
// and which methods (a YAML file; see configs/). The zero values of the
// optional fields are filled by the defaults of the paper (docs/method.md).
type Config struct {
	// Name names the sweep in reports.
	Name     string         `yaml:"name" json:"name"`
	Dataset  DatasetConfig  `yaml:"dataset" json:"dataset"`
	Backbone BackboneConfig `yaml:"backbone" json:"backbone"`
	Noise    NoiseConfig    `yaml:"noise" json:"noise"`
	// Methods are the detectors compared (detector.Names lists them), each
	// optionally with an image-level filter: "padim+patchcore" fits
	// PatchCore on the training images that PaDiM, fitted on all of them,
	// does not drop (see Filter).
	Methods  []string       `yaml:"methods" json:"methods"`
	Detector DetectorConfig `yaml:"detector" json:"detector"`
	Filter   FilterConfig   `yaml:"filter" json:"filter"`
	Decision DecisionConfig `yaml:"decision" json:"decision"`
	Run      RunConfig      `yaml:"run" json:"run"`
	// MethodOptions holds the settings of the methods that have their own
	// (detector.Method.Options), by method name: a config sets them under
	// a top-level key named after the method.
	MethodOptions map[string]any `yaml:"-" json:"method_options,omitempty"`
}

// DatasetConfig says where the images are.
type DatasetConfig struct {
	// Root is the dataset folder (relative paths are taken from the
	// config file's folder).
	Root string `yaml:"root" json:"root"`
	// Format is auto (detect) or one of datasets.FormatNames: mvtec, btad,
	// folder, visa, mvtec2, realiad (docs/datasets.md).
	Format string `yaml:"format" json:"format"`
	// Normal and MaskSuffix are the folder format's normal-folder name
	// and mask suffix (datasets.Layout).
	Normal     string `yaml:"normal" json:"normal,omitempty"`
	MaskSuffix string `yaml:"mask_suffix" json:"mask_suffix,omitempty"`
	// SplitFile is VisA's split CSV or Real-IAD's split JSON (or folder
	// of CLASS.json files, e.g. a contaminated-training split); relative
	// paths are taken from the config file's folder.
	SplitFile string `yaml:"split_file" json:"split_file,omitempty"`
	// Classes lists the classes to run; empty means every class found.
	Classes []string `yaml:"classes" json:"classes"`
	// Generate writes the generated dataset into Root when it is absent
	// (the quickstart); its fields are those of softpatch synth.
	Generate *GenerateConfig `yaml:"generate" json:"generate"`
	// SkipBad leaves out unusable files (unreadable images, anomalies
	// without masks), listed in the log, instead of failing the class.
	SkipBad bool `yaml:"skip_bad" json:"skip_bad,omitempty"`
}

// Layout returns the dataset's layout (a checked config has a valid one).
func (d DatasetConfig) Layout() (datasets.Layout, error) {
	f, err := datasets.ParseFormat(d.Format)
	if err != nil {
		return datasets.Layout{}, err
	}
	l := datasets.Layout{Format: f, Normal: d.Normal, MaskSuffix: d.MaskSuffix, SplitFile: d.SplitFile}
	return l, l.Check()
}

// GenerateConfig sizes the generated dataset.
type GenerateConfig struct {
	Train      int    `yaml:"train" json:"train"`
	TestGood   int    `yaml:"test_good" json:"test_good"`
	TestDefect int    `yaml:"test_defect" json:"test_defect"`
	Size       int    `yaml:"size" json:"size"`
	Seed       uint64 `yaml:"seed" json:"seed"`
}

// BackboneConfig is the feature pipeline (docs/method.md#3-features).
type BackboneConfig struct {
	Arch string `yaml:"arch" json:"arch"`
	// Weights is a checkpoint file; empty searches the usual places and
	// falls back to the random-init backbone.
	Weights    string   `yaml:"weights" json:"weights"`
	Layers     []string `yaml:"layers" json:"layers"`
	Resize     int      `yaml:"resize" json:"resize"`
	ImageSize  int      `yaml:"imagesize" json:"imagesize"`
	ResizeMode string   `yaml:"resize_mode" json:"resize_mode"`
	// BNPass is published (the published code's BatchNorm pass) or
	// checkpoint (the checkpoint's statistics as stored).
	BNPass string `yaml:"bn_pass" json:"bn_pass"`
	// PaDiMChannels and PaDiMSeed are PaDiM's channel subset of
	// layer1..3: how many (550) and the seed of the draw.
	PaDiMChannels int    `yaml:"padim_channels" json:"padim_channels"`
	PaDiMSeed     uint64 `yaml:"padim_seed" json:"padim_seed"`
}

// NoiseConfig is the noisy-training protocol's grid
// (docs/method.md#24-noise-injection).
type NoiseConfig struct {
	// Ratios are the noise ratios, each in [0, 1).
	Ratios []float64 `yaml:"ratios" json:"ratios"`
	// Overlap lists the overlap settings to run (false, true or both).
	Overlap []bool `yaml:"overlap" json:"overlap"`
	// Folds are the independent noise draws of each setting, by number:
	// "folds: [0, 1, 2]", or a count, "folds: 3" being the same.
	Folds   Folds `yaml:"folds" json:"folds"`
	Augment bool  `yaml:"augment" json:"augment"`
}

// DetectorConfig holds the detectors' parameters.
type DetectorConfig struct {
	Coreset    float64 `yaml:"coreset" json:"coreset"`
	Threshold  float64 `yaml:"threshold" json:"threshold"`
	LOFK       int     `yaml:"lof_k" json:"lof_k"`
	SoftWeight *bool   `yaml:"soft_weight" json:"soft_weight"`
	Seed       uint64  `yaml:"seed" json:"seed"`
	// Seeds, when given, replaces Seed: every cell runs once per seed
	// (experiments.Cell.Seed), and tables give the mean and standard
	// deviation over folds and seeds.
	Seeds []uint64 `yaml:"seeds" json:"seeds,omitempty"`
	// KNN is how memory banks search their nearest neighbours on the CPU:
	// auto (the default: the pruned exact search where it pays), exact
	// (always pruned) or brute. Every choice gives the same scores.
	KNN string `yaml:"knn" json:"knn,omitempty"`
}

// Folds lists fold numbers. In a config a list gives them, and a single
// number N stands for the first N, 0 to N-1.
type Folds []int

// FilterConfig is the image-level denoising of the methods named "X+Y"
// (docs/method.md#63-image-level-denoising-xy): X is fitted on the noisy
// training set and scores the training images themselves; the images it
// drops are those with the floor(Drop*N) highest scores or, with Threshold
// set instead, those scoring above Threshold. Neither set: Drop 0.1.
type FilterConfig struct {
	Drop      *float64 `yaml:"drop" json:"drop,omitempty"`
	Threshold *float64 `yaml:"threshold" json:"threshold,omitempty"`
}

// DecisionConfig is how a cell or a fitted model sets its decision
// threshold (detector.Decision) without anomalous images
// (docs/method.md#11-decision-threshold): from training images held out
// of fits of the same method, or from a validation split of normal
// images, at the false-positive rate FPR on normal images.
type DecisionConfig struct {
	// Source is auto (validation when the class has a validation split,
	// MVTec AD 2's, else holdout), holdout, validation or none.
	Source string `yaml:"source" json:"source"`
	// FPR is the false-positive rate on normal images asked for.
	FPR float64 `yaml:"fpr" json:"fpr"`
	// Holdout is the share of the training images each calibration fit
	// holds out: the training set is cut into round(1/Holdout) parts, and
	// Rounds of them are held out in turn (each costs one more fit; 0:
	// all of them, so that every training image is scored once).
	Holdout float64 `yaml:"holdout" json:"holdout"`
	Rounds  int     `yaml:"rounds" json:"rounds"`
}

// HeldOut is the number of parts held out in turn: Rounds, or all parts
// for 0.
func (d DecisionConfig) HeldOut() int {
	if d.Rounds == 0 {
		return d.Parts()
	}
	return d.Rounds
}

// DecisionSources are the values of DecisionConfig.Source.
var DecisionSources = []string{"auto", "holdout", "validation", "none"}

// DefaultDecision is the decision threshold's default: holdout (or
// validation) at a 1% false-positive rate, one fifth of the training
// images held out once.
var DefaultDecision = DecisionConfig{Source: "auto", FPR: 0.01, Holdout: 0.2, Rounds: 1}

// Parts is the number of parts a holdout calibration cuts the training
// set into.
func (d DecisionConfig) Parts() int { return max(2, int(math.Round(1/d.Holdout))) }

// Check reports an impossible decision setting, naming its key.
func (d DecisionConfig) Check() error {
	switch {
	case !slices.Contains(DecisionSources, d.Source):
		return fmt.Errorf("decision.source: %q is not one of %s", d.Source, strings.Join(DecisionSources, ", "))
	case !(d.FPR >= 0 && d.FPR < 1):
		return fmt.Errorf("decision.fpr: %v is not in [0, 1)", d.FPR)
	case !(d.Holdout > 0 && d.Holdout <= 0.5):
		return fmt.Errorf("decision.holdout: %v is not in (0, 0.5]", d.Holdout)
	case d.Rounds < 0 || d.Rounds > d.Parts():
		return fmt.Errorf("decision.rounds: %d is not in [0, %d] (holdout %v cuts the training set into %d parts; 0: all)", d.Rounds, d.Parts(), d.Holdout, d.Parts())
	}
	return nil
}

// DefaultDrop is the fraction of training images a filter drops when the
// config sets neither drop nor threshold.
const DefaultDrop = 0.1

// RunConfig holds how a sweep runs, not what it computes.
type RunConfig struct {
	Batch   int `yaml:"batch" json:"batch"`
	Threads int `yaml:"threads" json:"threads"`
	// Device is auto (a GPU when one is found), cpu or gpu.
	Device string `yaml:"device" json:"device"`
	// FeatureMemoryMiB bounds the features a class keeps in memory, and
	// those a cell's fit keeps (beyond it they go to a temporary file).
	FeatureMemoryMiB int64 `yaml:"feature_memory_mib" json:"feature_memory_mib"`
	// CacheDir is the on-disk feature cache shared by runs ("": the user
	// cache folder's softpatch/features; "off": none).
	CacheDir string `yaml:"cache_dir" json:"cache_dir"`
	// CacheMaxGiB bounds the cache's size; the least recently used
	// entries go first.
	CacheMaxGiB float64 `yaml:"cache_max_gib" json:"cache_max_gib"`
}

// defaults returns the paper's settings (docs/method.md#3-features to
// docs/method.md#5-softpatch).
func defaults() Config {
	soft := true
	cfg := Config{
		Dataset:  DatasetConfig{Format: "auto"},
		Backbone: BackboneConfig{Arch: backbone.WideResNet50_2.Name, Layers: []string{"layer2", "layer3"}, Resize: 256, ImageSize: 224, ResizeMode: datasets.ResizeShorter.String(), BNPass: backbone.BNPublished, PaDiMChannels: embed.DefaultPaDiMKeep, PaDiMSeed: embed.DefaultPaDiMSeed},
		Noise:    NoiseConfig{Ratios: []float64{0.1}, Overlap: []bool{false}, Folds: Folds{0}},
		// The paper's noise tables: PatchCore and SoftPatch.
		Methods:  detector.DefaultNames(),
		Detector: DetectorConfig{Coreset: 0.1, Threshold: 0.15, LOFK: 5, SoftWeight: &soft},
		Decision: DefaultDecision,
		Run:      RunConfig{Batch: 8, Device: "auto", FeatureMemoryMiB: 2048, CacheMaxGiB: 20},
	}
	for _, m := range detector.Methods() {
		if _, clash := field(reflect.ValueOf(&cfg).Elem(), m.Name); clash && m.Options != nil {
			panic("experiments: the options of method " + m.Name + " would hide the config key of that name")
		}
		if m.Options != nil {
			if cfg.MethodOptions == nil {
				cfg.MethodOptions = map[string]any{}
			}
			cfg.MethodOptions[m.Name] = m.Options()
		}
	}
	return cfg
}

// LoadConfig reads a config file, applies the --set overrides (each
// "key.path=YAML value", e.g. "noise.ratios=[0, 0.1]") and checks it. An
// unknown key, a value of the wrong type or an impossible value is an
// error naming the file, the line and what is allowed.
func LoadConfig(path string, sets []string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, d, err := parseConfig(path, b, sets)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	for key, p := range map[string]*string{"dataset.root": &cfg.Dataset.Root, "dataset.split_file": &cfg.Dataset.SplitFile, "backbone.weights": &cfg.Backbone.Weights} {
		if *p, err = resolvePath(*p, dir, d.lines[key] == 0); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", d.at(d.lines[key]), key, err)
		}
	}
	return cfg, nil
}

// resolvePath expands a leading "~" to the home folder and makes a
// relative path absolute: relative to the working directory for a value
// given with --set (fromSet), to the config's folder dir otherwise.
func resolvePath(p, dir string, fromSet bool) (string, error) {
	if p == "" {
		return p, nil
	}
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot expand %q: %w", p, err)
		}
		p = filepath.Join(home, p[1:])
	}
	if filepath.IsAbs(p) {
		return p, nil
	}
	if fromSet {
		return filepath.Abs(p)
	}
	return filepath.Join(dir, p), nil
}

// ParseConfig is LoadConfig on the file's contents, without resolving
// paths; name is used in errors.
func ParseConfig(name string, data []byte, sets []string) (*Config, error) {
	cfg, _, err := parseConfig(name, data, sets)
	return cfg, err
}

// parseConfig is ParseConfig, also returning the decoder, which knows the
// line of every key (0 for values given with --set).
func parseConfig(name string, data []byte, sets []string) (*Config, *decoder, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, fmt.Errorf("%s: %v", name, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil, fmt.Errorf("%s: empty config", name)
	}
	root := doc.Content[0]
	for _, s := range sets {
		if err := applySet(root, s); err != nil {
			return nil, nil, err
		}
	}
	cfg := defaults()
	d := &decoder{file: name, lines: map[string]int{}, extra: cfg.MethodOptions}
	if err := d.decode(root, reflect.ValueOf(&cfg).Elem(), ""); err != nil {
		return nil, nil, err
	}
	if err := cfg.check(d); err != nil {
		return nil, nil, err
	}
	return &cfg, d, nil
}

// applySet replaces (or adds) the value at a dotted key path of the
// mapping root by the YAML value of "key=value".
func applySet(root *yaml.Node, set string) error {
	key, val, ok := strings.Cut(set, "=")
	if !ok || key == "" {
		return fmt.Errorf("--set %q: want key.path=value", set)
	}
	var v yaml.Node
	if err := yaml.Unmarshal([]byte(val), &v); err != nil || len(v.Content) == 0 {
		return fmt.Errorf("--set %q: the value is not YAML", set)
	}
	setLines(v.Content[0], 0)
	n := root
	parts := strings.Split(key, ".")
	for i, p := range parts {
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("--set %q: %s is not a mapping", set, strings.Join(parts[:i], "."))
		}
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == p {
				next = n.Content[j+1]
				if i == len(parts)-1 {
					n.Content[j+1] = v.Content[0]
				}
			}
		}
		if next == nil {
			next = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			if i == len(parts)-1 {
				next = v.Content[0]
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p}, next)
		}
		n = next
	}
	return nil
}

// setLines marks nodes that come from --set (line 0) so that errors say so.
func setLines(n *yaml.Node, line int) {
	n.Line = line
	for _, c := range n.Content {
		setLines(c, line)
	}
}

// decoder decodes a YAML node tree into Config strictly, remembering the
// line of every key path for the checks.
type decoder struct {
	file  string
	lines map[string]int
	// extra are the top-level keys besides Config's fields: the methods'
	// own settings (Config.MethodOptions), each a pointer to a struct.
	extra map[string]any
}

// at formats the position of a node: "FILE:LINE" or "--set" for values
// given on the command line.
func (d *decoder) at(line int) string {
	if line == 0 {
		return d.file + " (--set)"
	}
	return fmt.Sprintf("%s:%d", d.file, line)
}

// errorf reports a problem with the value at key path.
func (d *decoder) errorf(path, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %s", d.at(d.lines[path]), path, fmt.Sprintf(format, args...))
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) error {
	d.lines[path] = n.Line
	if n.Kind == yaml.AliasNode {
		return fmt.Errorf("%s: %s: aliases are not supported", d.at(n.Line), path)
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s: %s: want a mapping of %s, got %s", d.at(n.Line), orTop(path), strings.Join(keys(v.Type()), ", "), describe(n))
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			f, ok := field(v, k.Value)
			if o, isExtra := d.extra[k.Value]; !ok && isExtra && path == "" {
				f, ok = reflect.ValueOf(o).Elem(), true
			}
			if !ok {
				allowed := keys(v.Type())
				if path == "" {
					allowed = append(allowed, slices.Sorted(maps.Keys(d.extra))...)
				}
				return fmt.Errorf("%s: unknown key %q in %s (allowed: %s)", d.at(k.Line), k.Value, orTop(path), strings.Join(allowed, ", "))
			}
			if seen[k.Value] {
				return fmt.Errorf("%s: key %q given twice in %s", d.at(k.Line), k.Value, orTop(path))
			}
			seen[k.Value] = true
			if err := d.decode(val, f, join(path, k.Value)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Pointer:
		if n.Tag == "!!null" {
			v.Set(reflect.Zero(v.Type()))
			return nil
		}
		p := reflect.New(v.Type().Elem())
		if v.Type().Elem().Kind() == reflect.Struct && !v.IsNil() {
			p.Elem().Set(v.Elem())
		}
		if err := d.decode(n, p.Elem(), path); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Slice:
		if v.Type() == reflect.TypeFor[Folds]() && n.Kind == yaml.ScalarNode {
			// A count: folds 0 to N-1.
			var count int
			if err := n.Decode(&count); err != nil || count < 1 || count > 100 {
				return fmt.Errorf("%s: %s: want a fold count in [1, 100] or a list of fold numbers, got %q", d.at(n.Line), path, n.Value)
			}
			f := make(Folds, count)
			for i := range f {
				f[i] = i
			}
			v.Set(reflect.ValueOf(f))
			return nil
		}
		items := n.Content
		if n.Kind == yaml.ScalarNode { // a single value stands for a one-element list
			items = []*yaml.Node{n}
		} else if n.Kind != yaml.SequenceNode {
			return fmt.Errorf("%s: %s: want a list of %s, got %s", d.at(n.Line), path, typeName(v.Type().Elem()), describe(n))
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, it := range items {
			if err := d.decode(it, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		d.lines[path] = n.Line
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("%s: %s: want %s, got %s", d.at(n.Line), path, typeName(v.Type()), describe(n))
	}
	if v.Kind() == reflect.String && n.Tag != "!!null" {
		v.SetString(n.Value) // as written: class 01 stays "01"
		return nil
	}
	p := reflect.New(v.Type())
	if err := n.Decode(p.Interface()); err != nil || n.Tag == "!!null" {
		return fmt.Errorf("%s: %s: want %s, got %q", d.at(n.Line), path, typeName(v.Type()), n.Value)
	}
	v.Set(p.Elem())
	return nil
}

// field returns the struct field tagged name.
func field(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("yaml") == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// keys lists a struct type's YAML keys.
func keys(t reflect.Type) []string {
	var ks []string
	for i := 0; i < t.NumField(); i++ {
		if k := t.Field(i).Tag.Get("yaml"); k != "-" {
			ks = append(ks, k)
		}
	}
	return ks
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.Struct:
		return "a mapping of " + strings.Join(keys(t), ", ")
	}
	return t.String()
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "the config"
	}
	return path
}

// check rejects impossible values, naming the line and the allowed ones.
func (c *Config) check(d *decoder) error {
	oneOf := func(path, v string, allowed []string) error {
		if !slices.Contains(allowed, v) {
			return d.errorf(path, "%q is not one of %s", v, strings.Join(allowed, ", "))
		}
		return nil
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(checkMethodOptions(c.MethodOptions, d))
	if c.Dataset.Root == "" {
		add(fmt.Errorf("%s: dataset.root is required", d.file))
	}
	if err := oneOf("dataset.format", c.Dataset.Format, datasets.FormatNames()); err != nil {
		add(err)
	} else if _, err := c.Dataset.Layout(); err != nil {
		add(d.errorf("dataset", "%v", err))
	}
	if g := c.Dataset.Generate; g != nil {
		if g.Train < 1 || g.TestGood < 1 || g.TestDefect < 1 {
			add(d.errorf("dataset.generate", "train, test_good and test_defect must be at least 1 (got %d, %d, %d)", g.Train, g.TestGood, g.TestDefect))
		}
		if g.Size != 0 && (g.Size < 32 || g.Size > 4096) {
			add(d.errorf("dataset.generate.size", "%d px is not in [32, 4096]", g.Size))
		}
	}
	add(oneOf("backbone.arch", c.Backbone.Arch, backbone.ArchNames()))
	if len(c.Backbone.Layers) == 0 {
		add(d.errorf("backbone.layers", "at least one layer is needed (%s)", strings.Join(backbone.Layers, ", ")))
	}
	for i, l := range c.Backbone.Layers {
		add(oneOf(fmt.Sprintf("backbone.layers[%d]", i), l, backbone.Layers))
	}
	if c.Backbone.ImageSize < 32 || c.Backbone.ImageSize > 4096 {
		add(d.errorf("backbone.imagesize", "%d is not in [32, 4096]", c.Backbone.ImageSize))
	}
	if c.Backbone.Resize < c.Backbone.ImageSize {
		add(d.errorf("backbone.resize", "%d is smaller than imagesize %d", c.Backbone.Resize, c.Backbone.ImageSize))
	}
	add(oneOf("backbone.resize_mode", c.Backbone.ResizeMode, datasets.ResizeModeNames()))
	add(oneOf("backbone.bn_pass", c.Backbone.BNPass, backbone.BNPasses()))
	if len(c.Noise.Ratios) == 0 {
		add(d.errorf("noise.ratios", "at least one ratio is needed (0 for clean training)"))
	}
	for i, r := range c.Noise.Ratios {
		if !(r >= 0 && r < 1) {
			add(d.errorf(fmt.Sprintf("noise.ratios[%d]", i), "%v is not in [0, 1)", r))
		}
	}
	if len(c.Noise.Overlap) == 0 {
		add(d.errorf("noise.overlap", "give false, true or [false, true]"))
	}
	if len(c.Noise.Folds) == 0 {
		add(d.errorf("noise.folds", "at least one fold is needed (a count, or a list of fold numbers)"))
	}
	for i, f := range c.Noise.Folds {
		if f < 0 || f > 999 {
			add(d.errorf(fmt.Sprintf("noise.folds[%d]", i), "%d is not in [0, 999]", f))
		}
		if slices.Index(c.Noise.Folds, f) < i {
			add(d.errorf(fmt.Sprintf("noise.folds[%d]", i), "fold %d is listed twice", f))
		}
	}
	for i, s := range c.Detector.Seeds {
		if slices.Index(c.Detector.Seeds, s) < i {
			add(d.errorf(fmt.Sprintf("detector.seeds[%d]", i), "seed %d is listed twice", s))
		}
	}
	if len(c.Methods) == 0 {
		add(d.errorf("methods", "at least one method is needed (%s)", strings.Join(detector.Names(), ", ")))
	}
	for i, m := range c.Methods {
		if _, _, err := detector.Split(m); err != nil {
			add(d.errorf(fmt.Sprintf("methods[%d]", i), "%v", err))
		}
	}
	if c.Backbone.PaDiMChannels < 1 {
		add(d.errorf("backbone.padim_channels", "%d is not at least 1", c.Backbone.PaDiMChannels))
	}
	if f := c.Filter; f.Drop != nil && f.Threshold != nil {
		add(d.errorf("filter", "give drop or threshold, not both"))
	} else if f.Drop != nil && !(*f.Drop >= 0 && *f.Drop < 1) {
		add(d.errorf("filter.drop", "%v is not in [0, 1)", *f.Drop))
	} else if f.Threshold != nil && math.IsNaN(*f.Threshold) {
		add(d.errorf("filter.threshold", "is NaN"))
	}
	for _, p := range (detector.Params{Coreset: c.Detector.Coreset, Threshold: c.Detector.Threshold, LOFK: c.Detector.LOFK}).Check() {
		add(d.errorf("detector."+p.Key, "%s", p.Problem))
	}
	if c.Detector.KNN != "" {
		add(oneOf("detector.knn", c.Detector.KNN, []string{"auto", "exact", "brute"}))
	}
	if err := c.Decision.Check(); err != nil {
		key, problem, _ := strings.Cut(err.Error(), ": ")
		add(d.errorf(key, "%s", problem))
	}
	if c.Run.Batch < 1 {
		add(d.errorf("run.batch", "%d is not at least 1", c.Run.Batch))
	}
	add(oneOf("run.device", c.Run.Device, []string{"auto", "cpu", "gpu"}))
	if c.Run.Threads < 0 {
		add(d.errorf("run.threads", "%d is negative (0: all cores)", c.Run.Threads))
	}
	if !(c.Run.CacheMaxGiB > 0) {
		add(d.errorf("run.cache_max_gib", "%v is not positive", c.Run.CacheMaxGiB))
	}
	if c.Run.FeatureMemoryMiB < 1 {
		add(d.errorf("run.feature_memory_mib", "%d is not at least 1", c.Run.FeatureMemoryMiB))
	}
	return errors.Join(errs...)
}

// checker is implemented by method options with rules of their own.
type checker interface{ Check() error }

// checkMethodOptions checks the methods' own settings that have rules
// (a Check method), in name order, the error naming where the method's
// section is.
func checkMethodOptions(opts map[string]any, d *decoder) error {
	for _, name := range slices.Sorted(maps.Keys(opts)) {
		if c, ok := opts[name].(checker); ok {
			if err := c.Check(); err != nil {
				return fmt.Errorf("%s: %w", d.at(d.lines[name]), err)
			}
		}
	}
	return nil
}

// MethodOptions returns the methods' own settings (defaults, then each
// "method.key=value" of sets applied, as a config's --set does), checked:
// the eval and fit commands' --set. A key that is not a method's setting
// is an error.
func MethodOptions(sets []string) (map[string]any, error) {
	root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, s := range sets {
		if err := applySet(root, s); err != nil {
			return nil, err
		}
	}
	cfg := defaults()
	d := &decoder{file: "--set", lines: map[string]int{}, extra: cfg.MethodOptions}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i].Value
		if _, ok := cfg.MethodOptions[k]; !ok {
			return nil, fmt.Errorf("--set %s...: %q is not a method with settings of its own (those are: %s)", k, k,
				strings.Join(slices.Sorted(maps.Keys(cfg.MethodOptions)), ", "))
		}
	}
	if err := d.decode(root, reflect.ValueOf(&cfg).Elem(), ""); err != nil {
		return nil, err
	}
	if err := checkMethodOptions(cfg.MethodOptions, d); err != nil {
		return nil, err
	}
	return cfg.MethodOptions, nil
}
