// Package synth generates a realistic anomaly-detection dataset in the
// MVTec AD layout, with exact defect masks, for use without MVTec at hand.
//
// Classes (see Classes and DefectTypes):
//
//   - fabric (texture): a denim-like 2/2 twill weave with jittered
//     orientation, phase and thread period. Defects: hole (frayed hole
//     showing the dark backing), stain (soft brown or grey stain, often
//     faint), thread (a loose thread lying on the weave).
//   - wood (texture): wood grain with noise-warped growth rings and fine
//     fibre streaks, jittered orientation and ring spacing. Defects: color
//     (discoloured patch), crack (dark jagged split along the grain), hole
//     (small dark hole with a darkened rim), scratch (thin light line, often
//     low contrast).
//   - pill (object): an oval white pill with red speckles, a score line and
//     an "FF" imprint on a dark background, jittered in position and
//     rotation. Defects: chip (piece missing from the outline), color
//     (faint tinted patch), contamination (small foreign particle), crack.
//   - nut (object): a hex nut with a threaded bore, chamfer and brushed
//     face on a light background with a drop shadow, rotated freely and
//     shifted. Defects: chip (broken corner), color (paint or rust spot),
//     scratch (thin bright or dark line on the face).
//   - capsules (several objects, opt-in: not in the default Classes, only
//     written when Config.Classes names it): a VisA-like dark tray with up
//     to twelve two-tone gelatin capsules on a loose 3×4 grid, each
//     jittered in position, angle, size and colour and lying either way
//     round, the grid shifted and turned a little, and a slot or two
//     sometimes empty. Every defect is on one capsule: color (discoloured
//     spot), contamination (foreign particle or fibre), crack (dark split
//     in the shell), squeeze (dented, pinched or bent capsule).
//
// Every image gets a lighting gradient, a brightness and white-balance
// change and Gaussian sensor noise. Defects are local (0.1% to 10% of the
// image), varied in size and contrast, and about a third are subtle. A
// defect's mask is exactly the set of pixels it changed by at least one
// grey level. Images depend only on (seed, class, split, index), so the
// same Config always gives byte-identical files.
package synth

import (
	"fmt"
	"hash/fnv"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/softpatch/softpatch/internal/atomicfile"
)

// Config says what Generate writes. Zero fields take their defaults.
type Config struct {
	Classes    []string // classes to write (any of AllClasses()); default: Classes()
	Seed       uint64   // default 0
	Size       int      // image side in pixels, default 256 (at least 32)
	Train      int      // training normals per class, default 200
	TestGood   int      // normal test images per class, default 20
	TestDefect int      // defective test images per class, default 60, spread evenly over the class's defect types
}

// Defaults for the zero fields of Config.
const (
	DefaultSize       = 256
	DefaultTrain      = 200
	DefaultTestGood   = 20
	DefaultTestDefect = 60
)

// Minimum and maximum share of the image a defect's mask covers.
const (
	MinDefectArea = 0.001
	MaxDefectArea = 0.10
)

// WithDefaults returns cfg with its zero fields set to their defaults.
func (cfg Config) WithDefaults() Config {
	if len(cfg.Classes) == 0 {
		cfg.Classes = Classes()
	}
	if cfg.Size == 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Train == 0 {
		cfg.Train = DefaultTrain
	}
	if cfg.TestGood == 0 {
		cfg.TestGood = DefaultTestGood
	}
	if cfg.TestDefect == 0 {
		cfg.TestDefect = DefaultTestDefect
	}
	return cfg
}

// Classes returns the default classes, in the order Generate writes them:
// fabric, wood (textures), pill, nut (objects). Config.Classes defaults to
// them. AllClasses adds the opt-in classes.
func Classes() []string {
	var out []string
	for _, c := range classDefs {
		if !c.optIn {
			out = append(out, c.name)
		}
	}
	return out
}

// AllClasses returns every class Generate can write: Classes followed by
// the opt-in classes (capsules), which are written only when
// Config.Classes names them.
func AllClasses() []string {
	var out []string
	for _, c := range classDefs {
		out = append(out, c.name)
	}
	return out
}

// DefectTypes returns a class's defect type names, sorted (nil for an
// unknown class).
func DefectTypes(class string) []string {
	if d := lookup(class); d != nil {
		return slices.Clone(d.defects)
	}
	return nil
}

func lookup(class string) *classDef {
	for i := range classDefs {
		if classDefs[i].name == class {
			return &classDefs[i]
		}
	}
	return nil
}

// Item is one image Generate writes for a class: its split folder
// ("train/good", "test/good" or "test/<defect>"), defect type ("" for a
// normal image) and index within the folder.
type Item struct {
	Folder string
	Defect string
	Index  int
}

// Path is the image's path relative to the class folder.
func (it Item) Path() string { return filepath.Join(it.Folder, fmt.Sprintf("%03d.png", it.Index)) }

// MaskPath is the mask's path relative to the class folder ("" for normals).
func (it Item) MaskPath() string {
	if it.Defect == "" {
		return ""
	}
	return filepath.Join("ground_truth", it.Defect, fmt.Sprintf("%03d_mask.png", it.Index))
}

// Items lists the images Generate writes for class under cfg (after
// defaults): training normals, test normals, then the defect types in
// DefectTypes order, TestDefect spread evenly over them (the first types
// get one more when it does not divide).
func Items(class string, cfg Config) []Item {
	cfg = cfg.WithDefaults()
	var items []Item
	for i := 0; i < cfg.Train; i++ {
		items = append(items, Item{Folder: "train/good", Index: i})
	}
	for i := 0; i < cfg.TestGood; i++ {
		items = append(items, Item{Folder: "test/good", Index: i})
	}
	types := DefectTypes(class)
	for k, d := range types {
		cnt := cfg.TestDefect / len(types)
		if k < cfg.TestDefect%len(types) {
			cnt++
		}
		for i := 0; i < cnt; i++ {
			items = append(items, Item{Folder: "test/" + d, Defect: d, Index: i})
		}
	}
	return items
}

// Limits of a Config: the largest image side, and the most images in one
// split (file names have three digits).
const (
	MaxSize  = 4096
	MaxCount = 999
)

func (cfg Config) validate() error {
	if cfg.Size < 32 || cfg.Size > MaxSize {
		return fmt.Errorf("synth: image size %d is outside [32, %d]", cfg.Size, MaxSize)
	}
	if cfg.Train < 0 || cfg.TestGood < 0 || cfg.TestDefect < 0 {
		return fmt.Errorf("synth: negative image count (train %d, test good %d, test defect %d)", cfg.Train, cfg.TestGood, cfg.TestDefect)
	}
	if cfg.Train > MaxCount || cfg.TestGood > MaxCount || cfg.TestDefect > MaxCount {
		return fmt.Errorf("synth: at most %d images per split (file names have three digits, as MVTec's): train %d, test good %d, test defect %d",
			MaxCount, cfg.Train, cfg.TestGood, cfg.TestDefect)
	}
	for _, c := range cfg.Classes {
		if lookup(c) == nil {
			return fmt.Errorf("synth: unknown class %q (classes: %s)", c, strings.Join(AllClasses(), ", "))
		}
	}
	return nil
}

// Generate writes cfg's classes under root in the MVTec AD layout:
// CLASS/train/good/000.png, CLASS/test/good/000.png,
// CLASS/test/DEFECT/000.png and CLASS/ground_truth/DEFECT/000_mask.png
// (8-bit grey, 0 or 255). Each class is written into a temporary folder
// under root and renamed into place when complete, so an interrupted run
// leaves no partial class folder. A class folder that already exists and
// is not empty is an error (remove it first to regenerate). progress, if
// not nil, is called after each image with the class, images done and the
// class's total; calls are serialised.
func Generate(root string, cfg Config, progress func(class string, done, total int)) error {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	for _, class := range cfg.Classes {
		if err := generateClass(root, class, cfg, progress); err != nil {
			return err
		}
	}
	return nil
}

// CheckFree returns an error naming dir when it exists and is not empty.
func CheckFree(dir string) error {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("synth: class folder %s exists and is not empty", dir)
	}
	return nil
}

func generateClass(root, class string, cfg Config, progress func(string, int, int)) error {
	final := filepath.Join(root, class)
	if err := CheckFree(final); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(root, "."+class+".tmp*")
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	items := Items(class, cfg)
	dirs := map[string]bool{}
	for _, it := range items {
		dirs[filepath.Dir(it.Path())] = true
		if m := it.MaskPath(); m != "" {
			dirs[filepath.Dir(m)] = true
		}
	}
	for d := range dirs {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			return fmt.Errorf("synth: %w", err)
		}
	}
	var (
		mu      sync.Mutex
		done    int
		firstEr error
		next    = make(chan Item)
		wg      sync.WaitGroup
	)
	workers := min(runtime.GOMAXPROCS(0), max(1, len(items)))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range next {
				err := writeItem(tmp, class, cfg, it)
				mu.Lock()
				if err != nil && firstEr == nil {
					firstEr = err
				}
				done++
				if progress != nil && err == nil {
					progress(class, done, len(items))
				}
				mu.Unlock()
			}
		}()
	}
	for _, it := range items {
		mu.Lock()
		failed := firstEr != nil
		mu.Unlock()
		if failed {
			break
		}
		next <- it
	}
	close(next)
	wg.Wait()
	if firstEr != nil {
		return firstEr
	}
	// An empty folder may stand in the way of the rename.
	if err := os.Remove(final); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("synth: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

func writeItem(dir, class string, cfg Config, it Item) error {
	split := it.Folder
	img, mask, err := render(class, cfg.Size, cfg.Seed, split, it.Index, it.Defect, true)
	if err != nil {
		return err
	}
	if err := writePNG(filepath.Join(dir, it.Path()), img); err != nil {
		return err
	}
	if mask != nil {
		return writePNG(filepath.Join(dir, it.MaskPath()), mask)
	}
	return nil
}

func writePNG(path string, img image.Image) error {
	err := atomicfile.WriteFile(path, func(w io.Writer) error {
		return (&png.Encoder{CompressionLevel: png.DefaultCompression}).Encode(w, img)
	})
	if err != nil {
		return fmt.Errorf("synth: writing %s: %w", path, err)
	}
	return nil
}

// newRand returns the PCG stream for one image and purpose.
func newRand(seed uint64, class, split string, index int, stream string) *rand.Rand {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%s", class, split, index, stream)
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// render draws one image: the normal scene for (seed, class, split,
// index), with the defect drawn on it when defect is not "" and
// withDefect is set. The mask (nil without a defect) is 255 exactly where
// the returned image differs from the same image rendered without the
// defect.
func render(class string, size int, seed uint64, split string, index int, defect string, withDefect bool) (*image.RGBA, *image.Gray, error) {
	cd := lookup(class)
	if cd == nil {
		return nil, nil, fmt.Errorf("synth: unknown class %q", class)
	}
	if defect != "" && !slices.Contains(cd.defects, defect) {
		return nil, nil, fmt.Errorf("synth: class %s has no defect type %q", class, defect)
	}
	n := size
	s := &scene{class: class, n: n, s: float64(n) / 256, img: newCanvas(n), bg: newCanvas(n)}
	cd.draw(s, newRand(seed, class, split, index, "scene"))
	light := lighting(s, newRand(seed, class, split, index, "light"))
	base := s.img
	lit := func(c *canvas) []float32 {
		out := make([]float32, len(c.pix))
		for i, v := range c.pix {
			out[i] = v * light[i]
		}
		return out
	}
	baseLit := lit(base)
	var defLit []float32
	if defect != "" {
		rd := newRand(seed, class, split, index, "defect")
		lo, hi := int(MinDefectArea*1.5*float64(n*n))+1, int(MaxDefectArea*0.9*float64(n*n))
		var cand []float32
		for try := 0; try < 200; try++ {
			def := base.clone()
			cd.defect(s, def, defect, rd)
			cand = lit(def)
			cnt := 0
			for p := 0; p < n*n; p++ {
				if changed(baseLit, cand, p) {
					cnt++
				}
			}
			if cnt >= lo && cnt <= hi {
				break
			}
			if try == 199 {
				return nil, nil, fmt.Errorf("synth: could not place a %s defect of %d..%d pixels on %s %s %d", defect, lo, hi, class, split, index)
			}
		}
		if withDefect {
			defLit = cand
		}
	}
	// No change at all where the defect moved a pixel by less than a grey
	// level; the same sensor noise on both.
	var keep []bool
	if defLit != nil {
		keep = make([]bool, n*n)
		for p := range keep {
			keep[p] = !changed(baseLit, defLit, p)
		}
	}
	noise(baseLit, n, newRand(seed, class, split, index, "noise"))
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	quant(img.Pix, baseLit)
	if defect == "" {
		return img, nil, nil
	}
	mask := image.NewGray(image.Rect(0, 0, n, n))
	if defLit == nil {
		return img, mask, nil
	}
	noise(defLit, n, newRand(seed, class, split, index, "noise"))
	for p, k := range keep {
		if k {
			copy(defLit[3*p:3*p+3], baseLit[3*p:3*p+3])
		}
	}
	out := image.NewRGBA(image.Rect(0, 0, n, n))
	quant(out.Pix, defLit)
	for p := 0; p < n*n; p++ {
		a, b := img.Pix[4*p:4*p+3], out.Pix[4*p:4*p+3]
		if a[0] != b[0] || a[1] != b[1] || a[2] != b[2] {
			mask.Pix[p] = 255
		}
	}
	return out, mask, nil
}

// changed says whether pixel p differs by at least one grey level in some
// channel.
func changed(a, b []float32, p int) bool {
	for c := 3 * p; c < 3*p+3; c++ {
		if d := a[c] - b[c]; d >= 1 || d <= -1 {
			return true
		}
	}
	return false
}

// lighting returns a per-value gain: brightness, white balance and a
// linear gradient in a random direction.
func lighting(s *scene, r *rand.Rand) []float32 {
	n := s.n
	b := uniform(r, 0.9, 1.08)
	g := uniform(r, -0.18, 0.18)
	phi := r.Float64() * 2 * math.Pi
	wb := [3]float64{uniform(r, 0.97, 1.03), 1, uniform(r, 0.97, 1.03)}
	cx, cy := math.Cos(phi), math.Sin(phi)
	out := make([]float32, 3*n*n)
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			t := ((float64(x)/float64(n)-0.5)*cx + (float64(y)/float64(n)-0.5)*cy)
			k := b * (1 + g*t)
			i := 3 * (y*n + x)
			for c := 0; c < 3; c++ {
				out[i+c] = float32(k * wb[c])
			}
		}
	}
	return out
}

// noise adds Gaussian sensor noise (partly shared between channels).
func noise(v []float32, n int, r *rand.Rand) {
	sigma := uniform(r, 1.2, 3)
	for p := 0; p < n*n; p++ {
		l := r.NormFloat64() * sigma * 0.7
		for c := 0; c < 3; c++ {
			v[3*p+c] += float32(l + r.NormFloat64()*sigma*0.5)
		}
	}
}

func quant(dst []uint8, v []float32) {
	for p := 0; p < len(v)/3; p++ {
		for c := 0; c < 3; c++ {
			x := math.Round(float64(v[3*p+c]))
			dst[4*p+c] = uint8(math.Max(0, math.Min(255, x)))
		}
		dst[4*p+3] = 255
	}
}
