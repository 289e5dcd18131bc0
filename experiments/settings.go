package experiments

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/softpatch/softpatch/datasets"
)

// NumericsVersion is the version of the numerics: it is raised by every
// change that makes any cell's numbers differ, so that cells stored before
// count as computed with other settings.
const NumericsVersion = 1

// Settings are everything a cell's numbers depend on, resolved: a stored
// cell is reused only when its settings hash equals the one planned.
type Settings struct {
	Numerics int            `json:"numerics"`
	Data     DataSettings   `json:"data"`
	Noise    datasets.Noise `json:"noise"`
	Method   string         `json:"method"`
	// Detector are the detector parameters every method takes, the
	// filter's rule when the method has one, and the options of the
	// cell's methods that have their own.
	Detector DetectorSettings `json:"detector"`
	Features FeatureSettings  `json:"features"`
	// Decision is how the cell sets its decision threshold (nil: it sets
	// none, as cells stored before thresholds existed).
	Decision *DecisionConfig `json:"decision,omitempty"`
}

// DataSettings identify a cell's data: the dataset root (absolute), its
// layout, the class, and a hash of the class's image files (their paths
// relative to the root and their sizes).
type DataSettings struct {
	Root   string `json:"root"`
	Format string `json:"format"`
	Class  string `json:"class"`
	Images string `json:"images"`
}

// DetectorSettings are a cell's detector settings.
type DetectorSettings struct {
	Coreset    float64        `json:"coreset"`
	Threshold  float64        `json:"threshold"`
	LOFK       int            `json:"lof_k"`
	Seed       uint64         `json:"seed"`
	SoftWeight bool           `json:"soft_weight"`
	Filter     *FilterRule    `json:"filter,omitempty"`
	Options    map[string]any `json:"options,omitempty"`
}

// FilterRule is an image-level filter's rule: its method and the fraction
// dropped, or the score above which images are dropped.
type FilterRule struct {
	Method    string   `json:"method"`
	Drop      float64  `json:"drop"`
	Threshold *float64 `json:"threshold,omitempty"`
}

// FeatureSettings identify a cell's features: the backbone and its
// weights (their sha256, or the random initialisation's seed), the
// BatchNorm statistics, the preprocessing, and each of the cell's
// methods' layers and embedding.
type FeatureSettings struct {
	Arch       string             `json:"arch"`
	Weights    string             `json:"weights"`
	BNPass     string             `json:"bn_pass"`
	Resize     int                `json:"resize"`
	ImageSize  int                `json:"imagesize"`
	ResizeMode string             `json:"resize_mode"`
	Pipelines  []PipelineSettings `json:"pipelines"`
}

// PipelineSettings are one method's layers and embedding (its type and
// its JSON).
type PipelineSettings struct {
	Method    string          `json:"method"`
	Layers    []string        `json:"layers"`
	Embedding string          `json:"embedding"`
	Embed     json.RawMessage `json:"embed"`
}

// Hash is the hex sha256 of the settings' JSON.
func (s *Settings) Hash() string {
	b, err := json.Marshal(s)
	if err != nil {
		panic("experiments: settings do not encode: " + err.Error()) // only JSON-encodable fields
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Diff lists the settings that differ between old and new, as
// "key old -> new" with dotted keys, sorted by key.
func Diff(old, new *Settings) []string {
	a, b := old.Leaves(), new.Leaves()
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if a[k] != b[k] {
			out = append(out, fmt.Sprintf("%s %s -> %s", k, orNone(a[k]), orNone(b[k])))
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Leaves returns the leaves of the settings' JSON by dotted key
// ("detector.coreset"), each as JSON; none for nil settings.
func (s *Settings) Leaves() map[string]string {
	out := map[string]string{}
	if s == nil {
		return out
	}
	b, _ := json.Marshal(s)
	var v any
	json.Unmarshal(b, &v)
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(strings.TrimPrefix(prefix+"."+k, "."), e)
			}
		default:
			j, _ := json.Marshal(x)
			out[prefix] = string(j)
		}
	}
	walk("", v)
	return out
}
