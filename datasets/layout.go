package datasets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Format names a dataset layout on disk.
type Format string

// The supported layouts. FormatAuto (the empty string) means "detect".
const (
	// FormatAuto detects the layout of each class from its train folder:
	// train/ok means BTAD, train/good means MVTec AD.
	FormatAuto Format = ""
	// FormatMVTec is MVTec AD: CLASS/train/good, CLASS/test/<type>, masks
	// CLASS/ground_truth/<defect>/<stem>_mask.png.
	FormatMVTec Format = "mvtec"
	// FormatBTAD is BTAD: normal folder ok, anomalous ko, images and masks
	// .bmp or .png, masks in CLASS/ground_truth/ko/<stem>.<ext>.
	FormatBTAD Format = "btad"
	// FormatFolder is an MVTec-like tree with a configurable normal-folder
	// name (Layout.Normal, default "good") and mask suffix
	// (Layout.MaskSuffix, default "_mask"); masks may be png, bmp, jpeg or
	// tiff.
	FormatFolder Format = "folder"
)

// ParseFormat parses "mvtec", "btad", "folder" or "" / "auto" (detect).
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case FormatMVTec, FormatBTAD, FormatFolder, FormatAuto:
		return f, nil
	case "auto":
		return FormatAuto, nil
	}
	return "", fmt.Errorf("datasets: unknown dataset format %q (want %s)", s, strings.Join(FormatNames()[1:], ", "))
}

// FormatNames returns the format names a config may give: "auto" (detect,
// FormatAuto), then the layouts.
func FormatNames() []string {
	return []string{"auto", string(FormatMVTec), string(FormatBTAD), string(FormatFolder)}
}

// Layout says how a dataset is laid out. Normal and MaskSuffix are used
// only by FormatFolder; empty means "good" and "_mask", and MaskSuffix
// NoMaskSuffix means masks have their image's stem.
type Layout struct {
	Format     Format
	Normal     string
	MaskSuffix string
}

// rules returns the normal-folder name, the mask suffix and the accepted
// mask extensions of a resolved format.
func (l Layout) rules(f Format) (normal, suffix string, maskExts []string) {
	switch f {
	case FormatMVTec:
		return "good", "_mask", []string{".png"}
	case FormatBTAD:
		return "ok", "", []string{".png", ".bmp"}
	}
	normal, suffix = l.Normal, l.MaskSuffix
	if normal == "" {
		normal = "good"
	}
	switch suffix {
	case "":
		suffix = "_mask"
	case NoMaskSuffix:
		suffix = ""
	}
	return normal, suffix, []string{".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"}
}

// NoMaskSuffix as Layout.MaskSuffix says that a folder layout's masks have
// exactly their image's stem, as BTAD's do.
const NoMaskSuffix = "none"

// imageExts are the file extensions listed as images (case-insensitive).
var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".bmp": true, ".tif": true, ".tiff": true}

// Item is one image of a class.
type Item struct {
	Class string `json:"class"`
	// Split is "train" or "test".
	Split string `json:"split"`
	// Type is the name of the folder the image is in: the normal folder
	// ("good" for MVTec, "ok" for BTAD) or a defect name.
	Type string `json:"type"`
	// Path is the image file (ROOT joined with its place in the tree).
	Path string `json:"path"`
	// MaskPath is the ground-truth mask of an anomalous image, "" for normal ones.
	MaskPath  string `json:"mask,omitempty"`
	Anomalous bool   `json:"anomalous"`
	// Width and Height are the image size read from the file header.
	Width  int `json:"width"`
	Height int `json:"height"`
	// Augment, set on injected noise images when Noise.Augment is on, is
	// the affine transform Preprocess.LoadItem applies after normalising.
	Augment *Affine `json:"augment,omitempty"`
}

// Problem is a file that Load could not use.
type Problem struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Error returns "datasets: PATH: REASON".
func (p Problem) Error() string { return "datasets: " + p.Path + ": " + p.Reason }

// Class is one class of a dataset: its training images (all normal) and
// test images, in the order of docs/method.md#21-layouts-and-file-order.
type Class struct {
	Name   string `json:"name"`
	Root   string `json:"root"`
	Format Format `json:"format"`
	// Normal is the name of the normal folder ("good", "ok", ...).
	Normal string `json:"normal"`
	Train  []Item `json:"train"`
	Test   []Item `json:"test"`
	// Problems lists the files skipped with LoadOptions.SkipBad.
	Problems []Problem `json:"problems,omitempty"`
}

// LoadOptions controls Load.
type LoadOptions struct {
	// SkipBad drops unusable files (bad header, missing or mismatched
	// mask) and lists them in Class.Problems instead of failing.
	SkipBad bool
	// Verify decodes every image and mask completely instead of reading
	// only its header, so that truncated and corrupt files are found before
	// any work starts (slower: a full decode per file).
	Verify bool
}

// Classes lists the classes under root: the sub-folders that contain a
// train or test folder, sorted by name. l is accepted for symmetry with
// Load; every layout keeps one class per sub-folder.
func Classes(root string, l Layout) ([]string, error) {
	if _, err := ParseFormat(string(l.Format)); err != nil {
		return nil, err
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("datasets: %s: dataset root not found", root)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("datasets: %s: dataset root is not a folder", root)
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("datasets: %s: %v", root, unwrapPath(err))
	}
	var out []string
	for _, e := range ents {
		if !isDir(root, e) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if dirExists(filepath.Join(root, e.Name(), "train")) || dirExists(filepath.Join(root, e.Name(), "test")) {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("datasets: %s: no classes (no sub-folder has a train or test folder)", root)
	}
	return out, nil // os.ReadDir sorts by name
}

// DetectFormat returns the layout of the class folder dir: BTAD if
// dir/train/ok exists, MVTec AD if dir/train/good exists.
func DetectFormat(dir string) (Format, error) {
	switch {
	case dirExists(filepath.Join(dir, "train", "ok")):
		return FormatBTAD, nil
	case dirExists(filepath.Join(dir, "train", "good")):
		return FormatMVTec, nil
	}
	return "", fmt.Errorf("datasets: %s: cannot detect the layout (neither train/good nor train/ok); give the format", dir)
}

// Load lists the images of class under root. Train items come from
// CLASS/train/NORMAL, sorted by file name; test items from every folder
// of CLASS/test, ordered by folder name (the normal folder sorts among the
// defect types), then file name. Each image's header is read (ImageSize);
// each anomalous test image must have a mask of the same size.
//
// Errors name the path and what is wrong: root or class missing (listing
// the classes that exist), an empty split, a file that is not a readable
// image, an anomalous image without a mask, a mask whose size differs from
// its image's. With opt.SkipBad, the per-file problems drop the file and
// are recorded in Class.Problems; a split left empty is still an error.
func Load(root, class string, l Layout, opt LoadOptions) (*Class, error) {
	f, err := ParseFormat(string(l.Format))
	if err != nil {
		return nil, err
	}
	classes, err := Classes(root, l)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, class)
	if class == "" || !contains(classes, class) {
		return nil, fmt.Errorf("datasets: %s: class %q not found (classes: %s)", dir, class, strings.Join(classes, ", "))
	}
	if f == FormatAuto {
		if f, err = DetectFormat(dir); err != nil {
			return nil, err
		}
	}
	normal, suffix, maskExts := l.rules(f)
	c := &Class{Name: class, Root: root, Format: f, Normal: normal}
	bad := func(path, reason string) error {
		if opt.SkipBad {
			c.Problems = append(c.Problems, Problem{path, reason})
			return nil
		}
		return Problem{path, reason}
	}

	// Training split.
	trainDir := filepath.Join(dir, "train", normal)
	files, err := listImages(trainDir, bad)
	if err != nil {
		return nil, err
	}
	for _, p := range files {
		it := Item{Class: class, Split: "train", Type: normal, Path: p}
		ok, err := checkImage(&it, opt.Verify, bad)
		if err != nil {
			return nil, err
		}
		if ok {
			c.Train = append(c.Train, it)
		}
	}
	if len(c.Train) == 0 {
		return nil, fmt.Errorf("datasets: %s: empty split: no usable training images", trainDir)
	}

	// Test split.
	testDir := filepath.Join(dir, "test")
	ents, err := os.ReadDir(testDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("datasets: %s: empty split: no test folder", testDir)
	}
	if err != nil {
		return nil, fmt.Errorf("datasets: %w", err)
	}
	for _, e := range ents {
		if !isDir(testDir, e) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		typ := e.Name()
		files, err := listImages(filepath.Join(testDir, typ), bad)
		if err != nil {
			return nil, err
		}
		for _, p := range files {
			it := Item{Class: class, Split: "test", Type: typ, Path: p, Anomalous: typ != normal}
			ok, err := checkImage(&it, opt.Verify, bad)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			if it.Anomalous {
				if ok, err = pairMask(&it, dir, suffix, maskExts, opt.Verify, bad); err != nil {
					return nil, err
				} else if !ok {
					continue
				}
			}
			c.Test = append(c.Test, it)
		}
	}
	if len(c.Test) == 0 {
		return nil, fmt.Errorf("datasets: %s: empty split: no usable test images", testDir)
	}
	return c, nil
}

// listImages returns the image files of dir sorted by name. Hidden files
// are ignored; files without an image extension are problems.
func listImages(dir string, bad func(path, reason string) error) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("datasets: %s: empty split: folder not found", dir)
		}
		return nil, fmt.Errorf("datasets: %s: %v", dir, unwrapPath(err))
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") || isDir(dir, e) {
			continue
		}
		p := filepath.Join(dir, name)
		if !imageExts[strings.ToLower(filepath.Ext(name))] {
			if err := bad(p, "unknown image format (want .png, .jpg, .jpeg, .bmp, .tif or .tiff)"); err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out) // ReadDir sorts already; keep it explicit
	return out, nil
}

// checkImage reads the header of it.Path into it.Width and it.Height and,
// with verify, decodes the whole file.
func checkImage(it *Item, verify bool, bad func(path, reason string) error) (bool, error) {
	w, h, err := ImageSize(it.Path)
	if err == nil && verify {
		_, err = DecodeRGBFile(it.Path)
	}
	if err != nil {
		return false, bad(it.Path, reason(err, it.Path))
	}
	it.Width, it.Height = w, h
	return true, nil
}

// pairMask finds the mask of an anomalous test image and checks its size.
func pairMask(it *Item, dir, suffix string, exts []string, verify bool, bad func(path, reason string) error) (bool, error) {
	stem := strings.TrimSuffix(filepath.Base(it.Path), filepath.Ext(it.Path))
	gt := filepath.Join(dir, "ground_truth", it.Type)
	var tried []string
	for _, ext := range exts {
		for _, e := range []string{ext, strings.ToUpper(ext)} {
			p := filepath.Join(gt, stem+suffix+e)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				it.MaskPath = p
				break
			}
		}
		if it.MaskPath != "" {
			break
		}
		tried = append(tried, stem+suffix+ext)
	}
	if it.MaskPath == "" {
		return false, bad(it.Path, fmt.Sprintf("anomalous image without mask (looked for %s in %s)", strings.Join(tried, " or "), gt))
	}
	w, h, err := ImageSize(it.MaskPath)
	if err == nil && verify {
		_, err = DecodeGrayFile(it.MaskPath)
	}
	if err != nil {
		return false, bad(it.MaskPath, reason(err, it.MaskPath))
	}
	if w != it.Width || h != it.Height {
		return false, bad(it.MaskPath, fmt.Sprintf("mask is %dx%d but its image %s is %dx%d", w, h, it.Path, it.Width, it.Height))
	}
	return true, nil
}

// reason strips the "datasets: PATH: " prefix of an ImageSize error.
func reason(err error, path string) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "datasets: ")
	s = strings.TrimPrefix(s, path+": ")
	return s
}

// unwrapPath returns the bare error of a *fs.PathError (the path is named
// by the caller).
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func isDir(parent string, e fs.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&fs.ModeSymlink != 0 {
		return dirExists(filepath.Join(parent, e.Name()))
	}
	return false
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
