package detector

import (
	"cmp"
	"fmt"
	"github.com/softpatch/softpatch/engine/knn"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/embed"
	"github.com/softpatch/softpatch/internal/atomicfile"
)

// Params are the settings every method's detector is built with: a sweep
// config's detector section, or the eval and fit flags. A method uses
// those that apply to it.
type Params struct {
	// Coreset is a memory bank's fraction of the training patches.
	Coreset float64
	// Threshold is SoftPatch's tau, LOFK its LOF neighbours (0: the
	// default).
	Threshold float64
	LOFK      int
	// Seed seeds the detector's random draws.
	Seed uint64
	// NoSoftWeight turns SoftPatch's soft weights off.
	NoSoftWeight bool
	// Search is how a memory bank's nearest neighbours are searched on
	// the CPU (knn.Auto: pruned where it pays); it changes no result.
	Search knn.Mode
	// Options are the settings of the methods that have their own
	// (Method.Options), by method name; a method without an entry uses
	// its defaults.
	Options map[string]any
	// Features is the feature pipeline the detector will be fitted on (the
	// method's FeatureSpec under the run's settings), for methods whose
	// detector reads the layout of its features from it (CFLOW).
	Features FeatureSpec
}

// ParamProblem is one invalid parameter: its name as a config key under
// "detector" (coreset, threshold, lof_k) and what is wrong.
type ParamProblem struct {
	Key, Problem string
}

// Check returns the params' invalid values, the same rules for configs
// and flags: Coreset in (0, 1), Threshold in [0, 1), LOFK at least 1.
func (p Params) Check() []ParamProblem {
	var out []ParamProblem
	if !(p.Coreset > 0 && p.Coreset < 1) {
		out = append(out, ParamProblem{"coreset", fmt.Sprintf("%v is not in (0, 1)", p.Coreset)})
	}
	if !(p.Threshold >= 0 && p.Threshold < 1) {
		out = append(out, ParamProblem{"threshold", fmt.Sprintf("%v is not in [0, 1)", p.Threshold)})
	}
	if p.LOFK < 1 {
		out = append(out, ParamProblem{"lof_k", fmt.Sprintf("%d is not at least 1", p.LOFK)})
	}
	return out
}

// FeatureSettings are what a method's features may depend on besides the
// backbone's preprocessing.
type FeatureSettings struct {
	// Layers are the configured backbone layers (backbone.layers).
	Layers []string
	// Arch is the backbone, for its channel counts.
	Arch backbone.Arch
	// PaDiMKeep and PaDiMSeed are the channels PaDiM keeps and the seed of
	// their draw (backbone.padim_channels, backbone.padim_seed).
	PaDiMKeep int
	PaDiMSeed uint64
	// Channels, when set, are the channels a model file records (Meta),
	// used instead of a draw.
	Channels []int
	// Options are the method's own settings (Method.Options; nil: its
	// defaults), for methods whose features depend on them (CFLOW's
	// layers).
	Options any
}

// FeatureSpec is a method's feature pipeline: the backbone layers it
// embeds and the embedding, with what a model file records of it (Meta's
// Embedding and Channels).
type FeatureSpec struct {
	Layers    []string
	Embed     embed.Embedder
	Embedding string
	Channels  []int
}

// Method is a registered detection method.
type Method struct {
	// Name is what configs, flags and results call the method.
	Name string
	// Summary is a one-line description for help texts.
	Summary string
	// Order places the method in reports' columns (the paper's order;
	// ties by name).
	Order int
	// Default puts the method in a config's default method list.
	Default bool
	// Cost is the method's cost of a cell relative to PatchCore's on the
	// same images (0 means 1), from which a sweep's shards are balanced
	// (experiments.Partition); a rough measure is enough.
	Cost float64
	// Features returns the feature pipeline the method fits and scores on.
	Features func(FeatureSettings) (FeatureSpec, error)
	// New returns an unfitted detector of the method.
	New func(Params) (Detector, error)
	// Options, when set, returns the method's own settings with their
	// defaults: a pointer to a struct whose fields have yaml and json tags.
	// A sweep config sets them under a top-level key named after the
	// method, and New finds them in Params.Options[Name].
	Options func() any
}

var (
	registryMu sync.Mutex
	methods    = map[string]Method{}
	formats    []format
)

// Register adds a method. It panics on an empty or duplicate name or a
// missing function, as registering is done once, in init functions.
func Register(m Method) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if m.Name == "" || strings.ContainsAny(m.Name, "+:.= \t") || m.Features == nil || m.New == nil {
		panic(fmt.Sprintf("detector.Register: method %q needs a name without '+', ':', '.', '=' or spaces (they separate filters, drop fractions and config keys), Features and New", m.Name))
	}
	if _, dup := methods[m.Name]; dup {
		panic("detector.Register: method " + m.Name + " registered twice")
	}
	methods[m.Name] = m
}

// Methods returns the registered methods in report order.
func Methods() []Method {
	registryMu.Lock()
	defer registryMu.Unlock()
	var out []Method
	for _, m := range methods {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Method) int { return cmp.Or(cmp.Compare(a.Order, b.Order), strings.Compare(a.Name, b.Name)) })
	return out
}

// Names returns the registered methods' names in report order.
func Names() []string {
	var ns []string
	for _, m := range Methods() {
		ns = append(ns, m.Name)
	}
	return ns
}

// DefaultNames returns the names of the methods a config compares when it
// names none, in report order.
func DefaultNames() []string {
	var ns []string
	for _, m := range Methods() {
		if m.Default {
			ns = append(ns, m.Name)
		}
	}
	return ns
}

// Lookup returns the method called name.
func Lookup(name string) (Method, error) {
	registryMu.Lock()
	m, ok := methods[name]
	registryMu.Unlock()
	if !ok {
		return Method{}, fmt.Errorf("unknown method %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return m, nil
}

// New returns an unfitted detector of the method called name.
func New(name string, p Params) (Detector, error) {
	m, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	return m.New(p)
}

// Split splits a cell's method name into its image-level filter ("" for
// none) and its detector, "FILTER+METHOD", and checks that both are
// registered.
func Split(name string) (filter, method string, err error) {
	filter, method, ok := strings.Cut(name, "+")
	if !ok {
		filter, method = "", name
	}
	for _, n := range []string{filter, method} {
		if n == "" && !ok {
			continue
		}
		if _, err := Lookup(n); err != nil {
			return "", "", fmt.Errorf("%q is not a method: want one of %s, or FILTER+METHOD of two of them", name, strings.Join(Names(), ", "))
		}
	}
	return filter, method, nil
}

// format is a model file format: its magic string, the method whose
// features its models take, and its reader.
type format struct {
	magic, method string
	load          func(io.Reader) (Detector, Meta, error)
}

// RegisterFormat adds a model file format: files starting with magic are
// read by load, and their features are those of the method called method
// (Features with the layers and channels the file's Meta records).
func RegisterFormat(magic, method string, load func(io.Reader) (Detector, Meta, error)) {
	registryMu.Lock()
	defer registryMu.Unlock()
	for _, f := range formats {
		if strings.HasPrefix(magic, f.magic) || strings.HasPrefix(f.magic, magic) {
			panic(fmt.Sprintf("detector.RegisterFormat: magic %q clashes with %q", magic, f.magic))
		}
	}
	formats = append(formats, format{magic, method, load})
}

// LoadFile reads a model file of any registered format. It returns the
// detector, its Meta, and the method whose Features give the model's
// feature pipeline.
func LoadFile(path string) (Detector, Meta, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Meta{}, "", fmt.Errorf("detector: %w", err)
	}
	defer f.Close()
	var head [64]byte
	n, _ := io.ReadFull(f, head[:])
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, Meta{}, "", fmt.Errorf("detector: %w", err)
	}
	registryMu.Lock()
	fs := slices.Clone(formats)
	registryMu.Unlock()
	for _, fm := range fs {
		if strings.HasPrefix(string(head[:n]), fm.magic) {
			// The reader gets the file itself: the PaDiM reader sizes its
			// arrays from the file's size.
			d, meta, err := fm.load(f)
			if err != nil {
				return nil, meta, "", fmt.Errorf("%s: %w", path, err)
			}
			return d, meta, fm.method, nil
		}
	}
	return nil, Meta{}, "", fmt.Errorf("%s: detector: load: not a model file of any known format (bad magic)", path)
}

// SaveFile writes a fitted detector and meta to path atomically (a reader
// never sees a partial file).
func SaveFile(path string, d Detector, meta Meta) error {
	if err := atomicfile.WriteFile(path, func(w io.Writer) error { return d.Save(w, meta) }); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
