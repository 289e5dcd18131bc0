package experiments

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/backbone"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/internal/atomicfile"
)

// Result is the JSON of one cell: what softpatch eval writes and what a
// results file stores for each cell (Record.Result).
type Result struct {
	Commit     string            `json:"commit"`
	Date       string            `json:"date"`   // when the cell finished, UTC RFC 3339
	Device     string            `json:"device"` // BLAS, kernels and threads; the GPU when one was used
	Data       string            `json:"data"`
	Class      string            `json:"class"`
	Method     string            `json:"method"`
	Noise      datasets.Noise    `json:"noise"`
	NoiseDrawn []string          `json:"noise_files"`
	Backbone   backbone.Identity `json:"backbone"`
	Mark       string            `json:"mark,omitempty"`
	// Draws, when the cell replayed a draws file, names it, its sha256 and
	// the draws replayed.
	Draws *DrawsInfo `json:"draws,omitempty"`
	// Settings are everything the cell's numbers depend on, and
	// SettingsHash their hash (Settings.Hash): a sweep reuses a stored
	// cell only when the hash is the planned one.
	Settings     *Settings `json:"settings,omitempty"`
	SettingsHash string    `json:"settings_hash,omitempty"`
	Train        int       `json:"train_images"`
	Test         int       `json:"test_images"`
	BankSize     int       `json:"bank_size"`
	Excluded     int       `json:"excluded_patches,omitempty"`
	// DefectBankEntries are the memory bank's entries that come from a
	// defect of an injected training image (the centre of the patch's cell
	// lies inside the image's mask), and DefectBankFraction their share of
	// the bank: what the denoising left in. Set for memory banks only.
	DefectBankEntries  int           `json:"defect_bank_entries,omitempty"`
	DefectBankFraction *float64      `json:"defect_bank_fraction,omitempty"`
	Filter             *FilterResult `json:"filter,omitempty"`
	// BestEpoch is the published CFLOW protocol's model selection on the
	// test set, for detectors that train in epochs: the test set is scored
	// after every epoch and each metric reported at its best epoch. The
	// cell's other metrics are the last epoch's.
	BestEpoch  *BestEpoch `json:"cflow_best_epoch,omitempty"`
	ImageAUROC float64    `json:"image_auroc"`
	PixelAUROC float64    `json:"pixel_auroc"`
	AUPRO      float64    `json:"aupro"`
	ImageF1Max float64    `json:"image_f1max"`
	PixelF1Max float64    `json:"pixel_f1max"`
	// ImageAP and PixelAP are the average precisions (sklearn's
	// average_precision_score) of the image scores and of every pixel.
	ImageAP float64 `json:"image_ap"`
	PixelAP float64 `json:"pixel_ap"`
	// AUPIMO is the mean over the anomalous test images of their AUPIMO
	// (experiments.AUPIMO: shared FPR 1e-5 to 1e-4 on the normal images);
	// nil with AUPIMONote saying why when the normal test images have too
	// few pixels to resolve that range.
	AUPIMO     *float64 `json:"aupimo,omitempty"`
	AUPIMONote string   `json:"aupimo_note,omitempty"`
	// Decision is the cell's decision threshold, set without anomalous
	// images, and how it fares on the test set.
	Decision *DecisionResult `json:"decision,omitempty"`
	// KNN is how a memory bank's test scoring searched its nearest
	// neighbours (set for memory banks only).
	KNN      *KNNResult         `json:"knn,omitempty"`
	PerImage []ImageScore       `json:"per_image"`
	Overlays []Overlay          `json:"overlays,omitempty"`
	Seconds  map[string]float64 `json:"seconds"`

	// missing lists the metrics that the decoded JSON lacked (or gave as
	// null); Metric reports them as absent.
	missing []string
}

// DecisionResult is a cell's decision threshold (detector.Decision) and
// its false-positive rate on the normal test images and false-negative
// rate on the anomalous ones (null without such images).
type DecisionResult struct {
	detector.Decision
	TestFPR *float64 `json:"test_fpr"`
	TestFNR *float64 `json:"test_fnr"`
}

// KNNResult is how a cell's test patches found their nearest memory-bank
// entries: the search mode asked for (auto, exact or brute; "gpu" when
// the GPU scored) and the share of the query-entry distances computed in
// full (1 for the brute force; the pruned search computes fewer and
// returns the same neighbours).
type KNNResult struct {
	Search   string  `json:"search"`
	Computed float64 `json:"computed"`
}

// BestEpoch is each metric at the training epoch (from 1) where it was
// highest, of Epochs epochs.
type BestEpoch struct {
	Epochs     int     `json:"epochs"`
	ImageAUROC float64 `json:"image_auroc"`
	ImageEpoch int     `json:"image_epoch"`
	PixelAUROC float64 `json:"pixel_auroc"`
	PixelEpoch int     `json:"pixel_epoch"`
}

// ImageScore is one test image's result.
type ImageScore struct {
	File  string  `json:"file"`
	Label int     `json:"label"`
	Type  string  `json:"type"`
	Score float32 `json:"score"`
	// AUPIMO is an anomalous image's AUPIMO (when the cell has one).
	AUPIMO *float64 `json:"aupimo,omitempty"`
}

// Overlay is an anomaly-map overlay written for a cell.
type Overlay struct {
	Which string  `json:"which"` // highest or lowest scored test image
	File  string  `json:"file"`  // the overlay PNG, relative to the results folder
	Image string  `json:"image"` // the test image, relative to the dataset root
	Score float32 `json:"score"`
}

// FilterResult is what an image-level filter did, in a cell's JSON.
type FilterResult struct {
	// Method is the filter's detector; Drop the fraction dropped, or
	// Threshold the score above which images were dropped.
	Method    string   `json:"method"`
	Drop      *float64 `json:"drop,omitempty"`
	Threshold *float64 `json:"threshold,omitempty"`
	// Dropped are the dropped training images (relative to the dataset
	// root), highest score first, with their scores.
	Dropped      []string  `json:"dropped"`
	DroppedScore []float32 `json:"dropped_scores"`
	// Injected is the number of injected (noise) images in the training
	// set, DroppedNoise how many of them were dropped; Precision is
	// DroppedNoise/len(Dropped) and Recall DroppedNoise/Injected (0 when
	// undefined).
	Injected     int     `json:"injected"`
	DroppedNoise int     `json:"dropped_noise"`
	Precision    float64 `json:"precision"`
	Recall       float64 `json:"recall"`
	// Reused is set when a sweep reused the filter run of an earlier cell
	// with the same training set and filter.
	Reused bool `json:"reused,omitempty"`
}

// Metrics names the scalar metrics of a Result (their JSON names), in the
// order of its fields.
var Metrics = []string{"image_auroc", "pixel_auroc", "aupro", "image_f1max", "pixel_f1max", "image_ap", "pixel_ap", "aupimo",
	"defect_bank_fraction", "test_fpr", "test_fnr"}

// nestedMetrics are the Metrics that are not top-level fields of a
// cell's JSON: the decision's rates on the test set.
var nestedMetrics = []string{"test_fpr", "test_fnr"}

// metric returns the field holding the named metric, nil for a name not
// in Metrics.
func (r *Result) metric(name string) *float64 {
	switch name {
	case "image_auroc":
		return &r.ImageAUROC
	case "pixel_auroc":
		return &r.PixelAUROC
	case "aupro":
		return &r.AUPRO
	case "image_f1max":
		return &r.ImageF1Max
	case "pixel_f1max":
		return &r.PixelF1Max
	case "image_ap":
		return &r.ImageAP
	case "pixel_ap":
		return &r.PixelAP
	case "aupimo":
		return r.AUPIMO
	case "defect_bank_fraction":
		return r.DefectBankFraction
	case "test_fpr", "test_fnr":
		if r.Decision == nil {
			return nil
		}
		if name == "test_fpr" {
			return r.Decision.TestFPR
		}
		return r.Decision.TestFNR
	}
	return nil
}

// Metric returns the value of the named metric (one of Metrics). ok is
// false for an unknown name, and for a metric that the JSON r was decoded
// from lacked or gave as null.
func (r *Result) Metric(name string) (v float64, ok bool) {
	p := r.metric(name)
	if p == nil || slices.Contains(r.missing, name) {
		return 0, false
	}
	return *p, true
}

// UnmarshalJSON decodes a cell's JSON, remembering which metrics it lacks
// so that Metric can tell a missing value from a zero.
func (r *Result) UnmarshalJSON(b []byte) error {
	type plain Result // the same fields without this method
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	p.missing = nil
	for _, name := range Metrics {
		if slices.Contains(nestedMetrics, name) {
			continue // absent exactly when their pointer is nil
		}
		if v, ok := fields[name]; !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			p.missing = append(p.missing, name)
		}
	}
	*r = Result(p)
	return nil
}

// Decode returns the record's result, decoded.
func (r Record) Decode() (*Result, error) {
	var res Result
	if err := json.Unmarshal(r.Result, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// OverlayDir returns the folder of a results folder where a run writes
// the files about one cell (its overlays and its bank in 2-D); cellDir is
// the cell's Cell.Dir.
func OverlayDir(resultsDir, cellDir string) string {
	return filepath.Join(resultsDir, "overlays", cellDir)
}

// Bank2DPath returns the path of a cell's bank in 2-D in a results folder
// (see OverlayDir).
func Bank2DPath(resultsDir, cellDir string) string {
	return filepath.Join(OverlayDir(resultsDir, cellDir), "bank2d.json")
}

// Bank2D is a memory bank in two dimensions, for the memory-bank figure:
// each entry's coordinates on the bank's two principal directions and
// whether it comes from an injected (noisy) training image.
type Bank2D struct {
	X     []float32 `json:"x"`
	Y     []float32 `json:"y"`
	Noisy []bool    `json:"noisy"`
	// Defect marks the entries inside a defect of an injected image
	// (Result.DefectBankEntries).
	Defect []bool `json:"defect,omitempty"`
}

// WriteBank2D writes b to path atomically as JSON, creating its folder.
func WriteBank2D(path string, b *Bank2D) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, func(w io.Writer) error { return json.NewEncoder(w).Encode(b) })
}

// ReadBank2D reads a bank written by WriteBank2D. A file that cannot be
// read gives the error of os.ReadFile (an *fs.PathError); one that is not
// a bank (bad JSON, or x, y and noisy of different lengths) gives an error
// naming the path.
func ReadBank2D(path string) (*Bank2D, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var b Bank2D
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("experiments: %s: not a bank file (%v)", path, err)
	}
	if len(b.X) != len(b.Noisy) || len(b.Y) != len(b.X) {
		return nil, fmt.Errorf("experiments: %s: not a bank file (%d x, %d y and %d noisy)", path, len(b.X), len(b.Y), len(b.Noisy))
	}
	return &b, nil
}
