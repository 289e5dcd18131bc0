package experiments

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/softpatch/softpatch/datasets"
	"github.com/softpatch/softpatch/engine/detector"
	"github.com/softpatch/softpatch/internal/atomicfile"
	"github.com/softpatch/softpatch/internal/npy"
)

// Draws are the random draws of one cell, as its draws file (draws.npz,
// numpy's npz without pickles) holds them: every cell writes the draws it
// used, and a cell given a draws file replays the draws it holds
// (docs/method.md#59-replayable-draws). Nil fields are absent keys.
type Draws struct {
	// NoiseFiles ("noise_files") are the injected images, paths relative
	// to the dataset root, in draw order.
	NoiseFiles []string
	// Augment ("augment", float64 [n][6]) are the affine parameters of
	// each injected image: angle, tx, ty, scale, shear x, shear y.
	Augment []datasets.Affine
	// Resample ("resample", float64 [n][6], as augment) are the affines
	// of resampled noise copies (datasets.Class.Inject, with the
	// augmentation off): one row per injected image in draw order, a row
	// of NaNs (nil here) for an image injected as it is.
	Resample []*datasets.Affine
	// PaDiMChannels ("padim_channels", int64) are the channels PaDiM keeps.
	PaDiMChannels []int
	// Detector holds the memory bank's draws: "discriminator_projection"
	// and "coreset_projection" (float32 [128][D]), "coreset_start_points"
	// and "random_subset" (int64).
	Detector detector.Draws
}

// DrawKeys are the keys of the draws the published code makes too. A
// draws file may hold them and ResampleKey (allDrawKeys).
var DrawKeys = []string{"noise_files", "augment", "discriminator_projection", "coreset_projection",
	"coreset_start_points", "random_subset", "padim_channels"}

// ResampleKey holds the affines of resampled noise copies (Draws.Resample),
// a draw of this implementation only.
const ResampleKey = "resample"

// allDrawKeys are the keys a draws file may hold, in the order Keys lists
// them.
var allDrawKeys = []string{"noise_files", "augment", ResampleKey, "discriminator_projection", "coreset_projection",
	"coreset_start_points", "random_subset", "padim_channels"}

// DrawsInfo is what a cell's result records of a replayed draws file.
type DrawsInfo struct {
	File     string   `json:"file"`
	SHA256   string   `json:"sha256"`
	Replayed []string `json:"replayed"`
}

// Keys lists the keys d holds, in DrawKeys order (ResampleKey after
// augment).
func (d *Draws) Keys() []string {
	var ks []string
	for _, k := range allDrawKeys {
		if d.has(k) {
			ks = append(ks, k)
		}
	}
	return ks
}

func (d *Draws) has(key string) bool {
	switch key {
	case "noise_files":
		return d.NoiseFiles != nil
	case "augment":
		return d.Augment != nil
	case ResampleKey:
		return d.Resample != nil
	case "padim_channels":
		return d.PaDiMChannels != nil
	case "discriminator_projection":
		return d.Detector.DiscriminatorProjection != nil
	case "coreset_projection":
		return d.Detector.CoresetProjection != nil
	case "coreset_start_points":
		return d.Detector.CoresetStartPoints != nil
	case "random_subset":
		return d.Detector.RandomSubset != nil
	}
	return false
}

func int64s(v []int) *npy.Array {
	a := &npy.Array{DType: "<i8", Shape: []int{len(v)}, I64: make([]int64, len(v))}
	for i, x := range v {
		a.I64[i] = int64(x)
	}
	return a
}

// WriteFile writes d as an npz file, atomically.
func (d *Draws) WriteFile(path string) error {
	var es []npy.Entry
	add := func(k string, a *npy.Array) {
		if d.has(k) {
			es = append(es, npy.Entry{Name: k, Array: a})
		}
	}
	add("noise_files", &npy.Array{DType: "<U", Shape: []int{len(d.NoiseFiles)}, Str: d.NoiseFiles})
	aug := &npy.Array{DType: "<f8", Shape: []int{len(d.Augment), 6}}
	for _, a := range d.Augment {
		aug.F64 = append(aug.F64, a.Angle, a.TX, a.TY, a.Scale, a.ShearX, 0)
	}
	add("augment", aug)
	res := &npy.Array{DType: "<f8", Shape: []int{len(d.Resample), 6}}
	for _, a := range d.Resample {
		if a == nil {
			nan := math.NaN()
			res.F64 = append(res.F64, nan, nan, nan, nan, nan, nan)
		} else {
			res.F64 = append(res.F64, a.Angle, a.TX, a.TY, a.Scale, a.ShearX, 0)
		}
	}
	add(ResampleKey, res)
	for _, p := range []struct {
		k string
		w []float32
	}{{"discriminator_projection", d.Detector.DiscriminatorProjection}, {"coreset_projection", d.Detector.CoresetProjection}} {
		add(p.k, &npy.Array{DType: "<f4", Shape: []int{128, len(p.w) / 128}, F32: p.w})
	}
	add("coreset_start_points", int64s(d.Detector.CoresetStartPoints))
	add("random_subset", int64s(d.Detector.RandomSubset))
	add("padim_channels", int64s(d.PaDiMChannels))
	if err := atomicfile.WriteFile(path, func(w io.Writer) error { return npy.WriteNPZ(w, es) }); err != nil {
		return fmt.Errorf("writing draws %s: %w", path, err)
	}
	return nil
}

// ReadDraws reads a draws file and returns it with the file's sha256.
// Errors name the file and the key: an unknown key, a dtype or a rank
// other than the key's, a projection without 128 rows, augment rows of
// other than 6 values or with a y shear, resample rows that mix NaN and
// numbers, and whatever npy.ReadNPZ refuses
// (a truncated archive, a pickle).
func ReadDraws(path string) (*Draws, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	arrays, err := npy.DecodeNPZ(b, path)
	if err != nil {
		return nil, "", err
	}
	d := &Draws{}
	bad := func(key string, a *npy.Array, want string) error {
		return fmt.Errorf("%s: draw %s is %s %v, want %s", path, key, a.DType, a.Shape, want)
	}
	var keys []string
	for k := range arrays {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		a := arrays[k]
		switch k {
		case "noise_files":
			if !strings.HasPrefix(a.DType, "<U") || len(a.Shape) != 1 {
				return nil, "", bad(k, a, "a 1-D unicode array")
			}
			d.NoiseFiles = a.Str
		case "augment":
			if a.DType != "<f8" || len(a.Shape) != 2 || a.Shape[1] != 6 {
				return nil, "", bad(k, a, "float64 [n, 6] (angle, tx, ty, scale, shear x, shear y)")
			}
			d.Augment = []datasets.Affine{}
			for i := 0; i < a.Shape[0]; i++ {
				r := a.F64[6*i : 6*i+6]
				if r[5] != 0 {
					return nil, "", fmt.Errorf("%s: draw augment row %d has a y shear %g; the published augmentation shears along x only", path, i, r[5])
				}
				d.Augment = append(d.Augment, datasets.Affine{Angle: r[0], TX: r[1], TY: r[2], Scale: r[3], ShearX: r[4]})
			}
		case ResampleKey:
			if a.DType != "<f8" || len(a.Shape) != 2 || a.Shape[1] != 6 {
				return nil, "", bad(k, a, "float64 [n, 6] (angle, tx, ty, scale, shear x, shear y; NaN for none)")
			}
			d.Resample = []*datasets.Affine{}
			for i := 0; i < a.Shape[0]; i++ {
				r := a.F64[6*i : 6*i+6]
				nans := 0
				for _, v := range r {
					if math.IsNaN(v) {
						nans++
					}
				}
				switch {
				case nans == 6:
					d.Resample = append(d.Resample, nil)
					continue
				case nans > 0:
					return nil, "", fmt.Errorf("%s: draw resample row %d mixes NaN (no affine) and numbers: %v", path, i, r)
				case r[5] != 0:
					return nil, "", fmt.Errorf("%s: draw resample row %d has a y shear %g; affines shear along x only", path, i, r[5])
				}
				d.Resample = append(d.Resample, &datasets.Affine{Angle: r[0], TX: r[1], TY: r[2], Scale: r[3], ShearX: r[4]})
			}
		case "discriminator_projection", "coreset_projection":
			if a.DType != "<f4" || len(a.Shape) != 2 || a.Shape[0] != 128 {
				return nil, "", bad(k, a, "float32 [128, D] (a torch.nn.Linear weight)")
			}
			if k == "coreset_projection" {
				d.Detector.CoresetProjection = a.F32
			} else {
				d.Detector.DiscriminatorProjection = a.F32
			}
		case "coreset_start_points", "random_subset", "padim_channels":
			if a.DType != "<i8" || len(a.Shape) != 1 {
				return nil, "", bad(k, a, "a 1-D int64 array")
			}
			v := make([]int, len(a.I64))
			for i, x := range a.I64 {
				v[i] = int(x)
			}
			switch k {
			case "coreset_start_points":
				d.Detector.CoresetStartPoints = v
			case "random_subset":
				d.Detector.RandomSubset = v
			default:
				d.PaDiMChannels = v
			}
		default:
			return nil, "", fmt.Errorf("%s: unknown draw %q (draws: %s)", path, k, strings.Join(allDrawKeys, ", "))
		}
	}
	return d, hex.EncodeToString(sum[:]), nil
}

// SetNoise records a cell's noise draw: the injected images (drawn,
// relative to root; nothing when none) and their affines. With augment
// every injected image has the augmentation's (augment); without it only
// resampled copies have one, recorded per injected image with none for the
// others (resample, absent when no image has an affine).
func (d *Draws) SetNoise(root string, drawn []datasets.Item, augment bool) {
	if len(drawn) > 0 {
		d.NoiseFiles = datasets.RelPaths(root, drawn)
	}
	var res []*datasets.Affine
	some := false
	for _, it := range drawn {
		if augment {
			if it.Augment != nil {
				d.Augment = append(d.Augment, *it.Augment)
			}
			continue
		}
		var a *datasets.Affine
		if it.Augment != nil {
			c := *it.Augment
			a = &c
		}
		res = append(res, a)
		some = some || a != nil
	}
	if some {
		d.Resample = res
	}
}

// ReplayNoise puts d's noise draw into n for a cell to replay: its files,
// its augmentation's affines (which turn the augmentation on) and its
// resampled copies' affines. A noise draw in both d and n.Files is an
// error, and so are resampled copies' affines with the augmentation on
// (with it, copies take the augmentation's draw).
func (d *Draws) ReplayNoise(n *datasets.Noise) error {
	if d.NoiseFiles != nil {
		if len(n.Files) > 0 {
			return errors.New("holds noise_files, and a noise list is given too: give one of them")
		}
		n.Files = d.NoiseFiles
	}
	if d.Augment != nil {
		n.Augment, n.Affines = true, d.Augment
	}
	if d.Resample != nil {
		if n.Augment {
			return errors.New("holds resample (affines of resampled noise copies drawn without the noise augmentation), and the augmentation is on: give one of them")
		}
		n.ResampleAffines = d.Resample
	}
	return nil
}
