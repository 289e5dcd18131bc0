package datasets

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/softpatch/softpatch/internal/atomicfile"
)

// Noise is the paper's noisy-training setting (docs/method.md#24-noise-injection).
type Noise struct {
	// Ratio r: floor(r * n_train) anomalous test images join training
	// (Class.Inject caps or resamples the draw where the class's
	// anomalous test images run out).
	Ratio float64 `json:"ratio"`
	// Overlap keeps the drawn images in the test set too; by default they
	// are removed from it.
	Overlap bool `json:"overlap"`
	// Fold names independent draws for the same ratio.
	Fold int `json:"fold"`
	// Files, when not empty, replaces the draw: the anomalous test images
	// to inject, as paths relative to the dataset root with forward
	// slashes (as WriteNoiseList writes them), relative to the class
	// folder, or absolute. Ratio is then ignored. A file may be listed
	// again only when that copy carries an affine (Augment, or its
	// ResampleAffines entry): a replayed draw's resampled copies.
	Files []string `json:"files,omitempty"`
	// Augment gives every injected image its own seeded random affine
	// transform (the published --noise_augmentation; see Affine).
	Augment bool `json:"augment,omitempty"`
	// Affines, when set with Augment, replace the affine draws: one per
	// injected image, in draw order (a replayed draws file).
	Affines []Affine `json:"affines,omitempty"`
	// ResampleAffines, when set without Augment, replace the affine draws
	// of resampled copies (Class.Inject): one entry per injected image, in
	// draw order, nil for an image injected as it is (a replayed draws
	// file's "resample").
	ResampleAffines []*Affine `json:"resample_affines,omitempty"`

	// What the draw did, set by Class.Inject (values given are ignored).
	// Both are absent from JSON when zero, so a draw that neither caps nor
	// resamples records exactly what it did before they existed.

	// Requested is NoiseCount's n_noise when the draw injected fewer
	// images: without Overlap a draw keeps NoiseReserve anomalous images in
	// the test set. The injected count is the number of drawn images.
	Requested int `json:"requested,omitempty"`
	// Resampled is how many injected images repeat an image injected
	// before (with Overlap, once the anomalous images run out), each with
	// its own affine.
	Resampled int `json:"resampled,omitempty"`
}

// NoiseCount returns n_noise = floor(ratio * nTrain), computed as the
// reference does (Python int(ratio * n_train) on float64).
func NoiseCount(ratio float64, nTrain int) int {
	return int(math.Floor(ratio * float64(nTrain)))
}

// noiseSeed hashes (dataset, class, ratio, fold) into a PCG seed. The
// ratio enters as its shortest decimal form, so 0.1 and 0.10 agree.
func noiseSeed(dataset, class string, ratio float64, fold int) (uint64, uint64) {
	key := strings.Join([]string{"softpatch-noise-v1", dataset, class,
		strconv.FormatFloat(ratio, 'g', -1, 64), strconv.Itoa(fold)}, "\x00")
	sum := sha256.Sum256([]byte(key))
	return binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])
}

// RelPath returns it.Path relative to root with forward slashes, the form
// used in noise lists.
func RelPath(root string, it Item) string {
	if r, err := filepath.Rel(root, it.Path); err == nil {
		return filepath.ToSlash(r)
	}
	return filepath.ToSlash(it.Path)
}

// FilesHash identifies the class's image files: the hex sha256 of their
// paths relative to the dataset root and their sizes, training images
// then test images, in the class's order.
func (c *Class) FilesHash() (string, error) {
	h := sha256.New()
	for _, it := range append(append([]Item(nil), c.Train...), c.Test...) {
		fi, err := os.Stat(it.Path)
		if err != nil {
			return "", fmt.Errorf("datasets: %w", err)
		}
		fmt.Fprintf(h, "%s\t%d\n", RelPath(c.Root, it), fi.Size())
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// RelPaths is RelPath of each item (an empty list for none).
func RelPaths(root string, items []Item) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, RelPath(root, it))
	}
	return out
}

// NoiseReservePercent is the share of a class's anomalous test images, in
// percent and rounded up to at least one image, that a draw without overlap
// leaves in the test set when the ratio asks for all of them or more
// (Class.Inject): image AUROC, pixel AUROC and AUPRO need anomalous test
// images, so a cell whose draw took them all could not be evaluated.
const NoiseReservePercent = 10

// NoiseReserve returns how many of a class's a anomalous test images a
// capped draw without overlap keeps in the test set:
// max(1, ceil(NoiseReservePercent/100 * a)), in integers.
func NoiseReserve(a int) int {
	return max(1, (a*NoiseReservePercent+99)/100)
}

// resampleSuffix keys the generator of resampled copies apart from the
// draw's and the augmentation's, which stay as they were.
const resampleSuffix = "\x00resample"

// Injection is a noisy split drawn by Class.Inject.
type Injection struct {
	// Train is the clean training images followed by Drawn; Test is the
	// test set after the draw (c.Test minus the injected images without
	// overlap, c.Test whole with it); Drawn is the injected images, in
	// draw order (see Class.Inject).
	Train, Test, Drawn []Item
	// Noise is the setting given, with the draw's outcome (Requested,
	// Resampled) set.
	Noise Noise
	// Anomalous is the number of the class's anomalous test images.
	Anomalous int
}

// Inject returns the noisy training set and the test set of c under n.
// The returned slices are new; c is not modified.
//
// Unless n.Files is given, k = NoiseCount(n.Ratio, len(c.Train)) and the
// class has A anomalous test images. For k < A, k of them are drawn
// uniformly without replacement (a partial Fisher-Yates shuffle) with a
// PCG generator seeded by (dataset, class, ratio, fold), so the same
// arguments always give the same draw and each fold an independent one;
// Drawn lists them in test order. Train is the clean training images
// followed by the drawn ones (Split stays "test", Anomalous true: the
// labels are known to the harness, not to the method; with n.Augment each
// drawn item carries its own seeded Affine, in draw order). Without
// n.Overlap, Test is c.Test minus exactly the drawn images; with it,
// c.Test whole.
//
// With n.Overlap and k >= A every anomalous image is injected once, in
// test order (the draw for k = A), followed by k - A resampled copies:
// passes over the anomalous images, each a Fisher-Yates permutation (so
// without replacement within a pass; the last pass takes the first of
// its), drawn from a PCG generator seeded by (dataset+"\x00resample",
// class, ratio, fold), which then draws each copy's affine with
// DrawResampleAffine in draw order. With n.Augment the copies instead take
// the augmentation's draw like every injected image (DrawAffine, in draw
// order; a copy is already distinct, and two transforms cannot be
// composed exactly under nearest sampling), and the generator draws only
// the passes. Noise.Resampled records k - A.
//
// Without n.Overlap and k >= A (a draw that would leave no anomalous test
// image) the draw is capped at A - NoiseReserve(A) images: the first
// A - NoiseReserve(A) steps of the same partial Fisher-Yates shuffle,
// listed in test order.
// Noise.Requested records k, and the injected count is len(Drawn).
//
// A class without anomalous test images and k > 0 is an error, as is a
// ratio outside [0, 1].
//
// n.Files replaces the draw (n.Ratio is then ignored, Requested stays 0
// and Resampled counts the list's repeats). A file listed more than once is
// an error unless each later occurrence carries an affine (n.Augment, or
// an n.ResampleAffines entry): the resampled copies of a replayed draws
// file.
func (c *Class) Inject(dataset string, n Noise) (*Injection, error) {
	n.Requested, n.Resampled = 0, 0
	var anom []int // indices into c.Test
	for i, it := range c.Test {
		if it.Anomalous {
			anom = append(anom, i)
		}
	}
	picked := map[int]bool{}
	var order []int // indices into c.Test, in draw order; a copy repeats one
	var copyAffines []Affine
	if len(n.Files) > 0 {
		// A file may be named relative to the root (as WriteNoiseList
		// writes it), relative to the class folder (test/TYPE/FILE), or
		// by its absolute path, as other implementations record draws.
		byRel := map[string]int{}
		for _, i := range anom {
			it := c.Test[i]
			byRel[RelPath(c.Root, it)] = i
			byRel[strings.TrimPrefix(RelPath(c.Root, it), c.Name+"/")] = i
			if abs, err := filepath.Abs(it.Path); err == nil {
				byRel[filepath.ToSlash(abs)] = i
			}
		}
		for j, f := range n.Files {
			key := filepath.ToSlash(filepath.Clean(filepath.FromSlash(f)))
			i, ok := byRel[key]
			if !ok {
				return nil, fmt.Errorf("datasets: %s: not an anomalous test image of class %s under %s", f, c.Name, c.Root)
			}
			if picked[i] && !n.Augment && (j >= len(n.ResampleAffines) || n.ResampleAffines[j] == nil) {
				return nil, fmt.Errorf("datasets: %s: listed twice in the noise list, and no affine tells the copy apart (a list cannot carry resampled copies' affines: replay the cell's draws file with --draws instead)", f)
			}
			picked[i] = true
			order = append(order, i)
		}
	} else {
		if math.IsNaN(n.Ratio) || n.Ratio < 0 || n.Ratio > 1 {
			return nil, fmt.Errorf("datasets: noise ratio %v out of range [0, 1]", n.Ratio)
		}
		k := NoiseCount(n.Ratio, len(c.Train))
		take, copies := k, 0
		switch {
		case k > 0 && len(anom) == 0:
			return nil, fmt.Errorf("datasets: %s: noise ratio %v needs %d anomalous images but class %s has none",
				filepath.Join(c.Root, c.Name), n.Ratio, k, c.Name)
		case n.Overlap && k > len(anom):
			take, copies = len(anom), k-len(anom)
		case !n.Overlap && k > 0 && k >= len(anom):
			take, n.Requested = len(anom)-NoiseReserve(len(anom)), k
		}
		r := rand.New(rand.NewPCG(noiseSeed(dataset, c.Name, n.Ratio, n.Fold)))
		perm := append([]int(nil), anom...)
		for j := 0; j < take; j++ { // partial Fisher-Yates
			m := j + r.IntN(len(perm)-j)
			perm[j], perm[m] = perm[m], perm[j]
			picked[perm[j]] = true
		}
		for _, i := range anom { // test order
			if picked[i] {
				order = append(order, i)
			}
		}
		if copies > 0 {
			s1, s2 := noiseSeed(dataset+resampleSuffix, c.Name, n.Ratio, n.Fold)
			rr := rand.New(rand.NewPCG(s1, s2))
			for left := copies; left > 0; left -= len(anom) {
				pass := append([]int(nil), anom...)
				for j := range pass { // a full Fisher-Yates pass
					m := j + rr.IntN(len(pass)-j)
					pass[j], pass[m] = pass[m], pass[j]
				}
				order = append(order, pass[:min(left, len(pass))]...)
			}
			if !n.Augment {
				for range copies {
					copyAffines = append(copyAffines, DrawResampleAffine(rr))
				}
			}
		}
	}
	n.Resampled = len(order) - len(picked)
	train := append([]Item(nil), c.Train...)
	var aug *rand.Rand
	if n.Augment {
		s1, s2 := noiseSeed(dataset+"\x00augment", c.Name, n.Ratio, n.Fold)
		aug = rand.New(rand.NewPCG(s1, s2))
	}
	if len(n.Affines) > 0 && (!n.Augment || len(n.Affines) != len(order)) {
		return nil, fmt.Errorf("datasets: %d replayed affine draws for %d injected images (augmentation %t)", len(n.Affines), len(order), n.Augment)
	}
	if len(n.ResampleAffines) > 0 && (n.Augment || len(n.ResampleAffines) != len(order)) {
		return nil, fmt.Errorf("datasets: %d replayed resampled-copy affines for %d injected images (augmentation %t; copies take its draw then)",
			len(n.ResampleAffines), len(order), n.Augment)
	}
	first := len(order) - len(copyAffines) // the first drawn copy
	var drawn, test []Item
	for j, i := range order {
		it := c.Test[i]
		switch {
		case len(n.Affines) > 0:
			a := n.Affines[j]
			it.Augment = &a
		case aug != nil:
			a := DrawAffine(aug)
			it.Augment = &a
		case len(n.ResampleAffines) > 0:
			if p := n.ResampleAffines[j]; p != nil {
				a := *p
				it.Augment = &a
			}
		case j >= first:
			a := copyAffines[j-first]
			it.Augment = &a
		}
		drawn = append(drawn, it)
	}
	train = append(train, drawn...)
	for i, it := range c.Test {
		if n.Overlap || !picked[i] {
			test = append(test, it)
		}
	}
	return &Injection{Train: train, Test: test, Drawn: drawn, Noise: n, Anomalous: len(anom)}, nil
}

// WriteNoiseList writes the drawn images as a JSON list of paths relative
// to root (forward slashes), atomically.
func WriteNoiseList(path, root string, drawn []Item) error {
	names := make([]string, 0, len(drawn))
	for _, it := range drawn {
		names = append(names, RelPath(root, it))
	}
	err := atomicfile.WriteFile(path, func(w io.Writer) error {
		b, err := json.MarshalIndent(names, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("datasets: %s: writing noise list: %w", path, err)
	}
	return nil
}

// ReadNoiseList reads a JSON list of file names written by WriteNoiseList
// (or by another implementation), for Noise.Files.
func ReadNoiseList(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("datasets: %s: %v", path, unwrapPath(err))
	}
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return nil, fmt.Errorf("datasets: %s: not a JSON list of file names: %v", path, err)
	}
	return names, nil
}
