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

// Format names a dataset layout on disk. docs/datasets.md describes each
// one with its quirks.
type Format string

// The supported layouts. FormatAuto (the empty string) means "detect".
const (
	// FormatAuto detects the layout of each class folder (DetectFormat).
	FormatAuto Format = ""
	// FormatMVTec is MVTec AD: CLASS/train/good, CLASS/test/<type>, masks
	// CLASS/ground_truth/<defect>/<stem>_mask.png. MPDD uses it too.
	FormatMVTec Format = "mvtec"
	// FormatBTAD is BTAD: normal folder ok, anomalous ko, images and masks
	// .bmp or .png, masks in CLASS/ground_truth/ko/<stem>.<ext>.
	FormatBTAD Format = "btad"
	// FormatFolder is an MVTec-like tree with a configurable normal-folder
	// name (Layout.Normal, default "good") and mask suffix
	// (Layout.MaskSuffix, default "_mask"); masks may be png, bmp, jpeg or
	// tiff.
	FormatFolder Format = "folder"
	// FormatVisA is the VisA release: CLASS/Data/Images/{Normal,Anomaly},
	// masks CLASS/Data/Masks/Anomaly/<stem>.png, the split in a CSV
	// (Layout.SplitFile, default ROOT/split_csv/1cls.csv). Its masks mark
	// defects with any non-zero value (Item.MaskNonZero).
	FormatVisA Format = "visa"
	// FormatMVTec2 is MVTec AD 2: CLASS/train/good, CLASS/validation/good
	// (Class.Validation), CLASS/test_public/{good,bad} with masks
	// CLASS/test_public/ground_truth/bad/<stem>_mask.png, and the
	// unlabelled CLASS/test_private and CLASS/test_private_mixed
	// (Class.Unlabeled).
	FormatMVTec2 Format = "mvtec2"
	// FormatRealIAD is Real-IAD: ROOT is one resolution's image folder
	// (realiad_1024, realiad_256, ...), CLASS/OK and CLASS/NG hold the
	// images, and a JSON split file (Layout.SplitFile) lists the train and
	// test samples, the FUIAD files with anomalous training images.
	FormatRealIAD Format = "realiad"
)

// ParseFormat parses a name of FormatNames ("" and "auto" mean detect),
// ignoring case and surrounding space.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case FormatMVTec, FormatBTAD, FormatFolder, FormatVisA, FormatMVTec2, FormatRealIAD, FormatAuto:
		return f, nil
	case "auto":
		return FormatAuto, nil
	}
	return "", fmt.Errorf("datasets: unknown dataset format %q (want %s, or auto)", s, strings.Join(FormatNames()[1:], ", "))
}

// FormatNames returns the format names a config may give: "auto" (detect,
// FormatAuto), then the layouts.
func FormatNames() []string {
	return []string{"auto", string(FormatMVTec), string(FormatBTAD), string(FormatFolder),
		string(FormatVisA), string(FormatMVTec2), string(FormatRealIAD)}
}

// Layout says how a dataset is laid out. Normal and MaskSuffix are used
// only by FormatFolder; empty means "good" and "_mask", and MaskSuffix
// NoMaskSuffix means masks have their image's stem.
//
// SplitFile is used only by FormatVisA and FormatRealIAD (and by
// FormatAuto when the class turns out to be one of them): VisA's split
// CSV (default ROOT/split_csv/1cls.csv), or Real-IAD's split JSON, or a
// folder holding one JSON per class named CLASS.json (default: the first of
// ROOT/../realiad_jsons/CLASS.json and
// ROOT/../realiad_jsons/realiad_jsons/CLASS.json that exists).
type Layout struct {
	Format     Format
	Normal     string
	MaskSuffix string
	SplitFile  string
}

// Check reports a layout whose options do not apply to its format: Normal
// and MaskSuffix belong to FormatFolder, SplitFile to FormatVisA and
// FormatRealIAD (or FormatAuto, which may find either). The error names the
// options as Layout's fields; callers say which flag or key set them.
func (l Layout) Check() error {
	name := string(l.Format)
	if l.Format == FormatAuto {
		name = "auto"
	}
	if (l.Normal != "" || l.MaskSuffix != "") && l.Format != FormatFolder {
		return fmt.Errorf("datasets: a normal-folder name and a mask suffix need the folder format, not %s", name)
	}
	if l.SplitFile != "" && l.Format != FormatVisA && l.Format != FormatRealIAD && l.Format != FormatAuto {
		return fmt.Errorf("datasets: a split file needs the visa or realiad format, not %s", name)
	}
	return nil
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
	// Split is "train" or "test"; "validation", "test_private" or
	// "test_private_mixed" for the extra lists of MVTec AD 2.
	Split string `json:"split"`
	// Type is the name of the folder the image is in: the normal folder
	// ("good" for MVTec, "ok" for BTAD) or a defect name. VisA items have
	// "normal", or for anomalies the defect label of CLASS/image_anno.csv
	// ("anomaly" without one); Real-IAD items their anomaly_class ("OK"
	// for normal ones); unlabelled items "unlabeled".
	Type string `json:"type"`
	// Path is the image file (ROOT joined with its place in the tree).
	Path string `json:"path"`
	// MaskPath is the ground-truth mask of an anomalous image, "" for normal ones.
	MaskPath  string `json:"mask,omitempty"`
	Anomalous bool   `json:"anomalous"`
	// MaskNonZero says that any non-zero mask value marks a defect (VisA),
	// instead of the reference's rule for MVTec AD (Preprocess.LoadMask);
	// Preprocess.LoadItemMask reads the mask by the item's rule.
	MaskNonZero bool `json:"mask_nonzero,omitempty"`
	// Width and Height are the image size read from the file header.
	Width  int `json:"width"`
	Height int `json:"height"`
	// Augment is the affine transform Preprocess.LoadItem applies after
	// normalising, set on injected noise images only: each injected
	// image's own draw when Noise.Augment is on (the published
	// --noise_augmentation, DrawAffine), and otherwise a resampled copy's
	// small affine (DrawResampleAffine; see Class.Inject). nil: as loaded.
	Augment *Affine `json:"augment,omitempty"`
}

// Problem is a file that Load could not use.
type Problem struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Error returns "datasets: PATH: REASON".
func (p Problem) Error() string { return "datasets: " + p.Path + ": " + p.Reason }

// Class is one class of a dataset: its training images and test images,
// in the order of docs/method.md#21-layouts-and-file-order. Training
// images are normal except where the split file of a VisA or Real-IAD
// class puts anomalous images into training (Real-IAD's FUIAD files): those
// are training items with Anomalous set, known to the harness only.
type Class struct {
	Name   string `json:"name"`
	Root   string `json:"root"`
	Format Format `json:"format"`
	// Normal is the name of the normal folder ("good", "ok", ...), or the
	// normal label of a split file ("normal" for VisA, Real-IAD's
	// normal_class, "OK").
	Normal string `json:"normal"`
	Train  []Item `json:"train"`
	Test   []Item `json:"test"`
	// Validation is MVTec AD 2's validation set (validation/good, Split
	// "validation", all normal), nil for the other formats.
	Validation []Item `json:"validation,omitempty"`
	// Unlabeled is MVTec AD 2's private test images (test_private and
	// test_private_mixed, Split naming the folder), which ship without
	// ground truth: they can be scored (predict) but not evaluated. Nil
	// for the other formats.
	Unlabeled []Item `json:"unlabeled,omitempty"`
	// Problems lists the files skipped with LoadOptions.SkipBad.
	Problems []Problem `json:"problems,omitempty"`
	// Warnings lists usable but suspicious files: with LoadOptions.Verify,
	// masks that mark no pixel as a defect under their item's mask rule;
	// a VisA image_anno.csv whose defect names could not be read.
	Warnings []Problem `json:"warnings,omitempty"`
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

// classMarkers returns the folders, relative to a class folder, of which
// one makes a sub-folder of the root a class of format f.
func classMarkers(f Format) []string {
	visa := filepath.Join("Data", "Images")
	switch f {
	case FormatMVTec, FormatBTAD, FormatFolder:
		return []string{"train", "test"}
	case FormatMVTec2:
		return []string{"train", "test_public"}
	case FormatVisA:
		return []string{visa}
	case FormatRealIAD:
		return []string{"OK", "NG"}
	}
	return []string{"train", "test", "test_public", visa, "OK", "NG"}
}

// Classes lists the classes under root, sorted by name: the sub-folders
// that contain a train or test folder (mvtec, btad, folder), train or
// test_public (mvtec2), Data/Images (visa), OK or NG (realiad), or any of
// these (auto). Every layout keeps one class per sub-folder.
func Classes(root string, l Layout) ([]string, error) {
	f, err := ParseFormat(string(l.Format))
	if err != nil {
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
	markers := classMarkers(f)
	var out []string
	for _, e := range ents {
		if !isDir(root, e) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		for _, m := range markers {
			if dirExists(filepath.Join(root, e.Name(), m)) {
				out = append(out, e.Name())
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("datasets: %s: no classes (no sub-folder has a %s folder)", root, strings.Join(markers, " or "))
	}
	return out, nil // os.ReadDir sorts by name
}

// DetectFormat returns the layout of the class folder dir: BTAD if
// dir/train/ok exists; MVTec AD 2 if dir/train/good and dir/validation or
// dir/test_public do; MVTec AD if dir/train/good does; VisA if
// dir/Data/Images does; Real-IAD if dir/OK or dir/NG does.
func DetectFormat(dir string) (Format, error) {
	has := func(rel ...string) bool { return dirExists(filepath.Join(append([]string{dir}, rel...)...)) }
	switch {
	case has("train", "ok"):
		return FormatBTAD, nil
	case has("train", "good") && (has("validation") || has("test_public")):
		return FormatMVTec2, nil
	case has("train", "good"):
		return FormatMVTec, nil
	case has("Data", "Images"):
		return FormatVisA, nil
	case has("OK") || has("NG"):
		return FormatRealIAD, nil
	}
	return "", fmt.Errorf("datasets: %s: cannot detect the layout (none of train/good, train/ok, Data/Images, OK or NG); give the format", dir)
}

// Load lists the images of class under root.
//
// In the folder layouts (mvtec, btad, folder, and mvtec2 with test_public
// for test) train items come from CLASS/train/NORMAL, sorted by file name;
// test items from every folder of CLASS/test, ordered by folder name (the
// normal folder sorts among the defect types), then file name. VisA and
// Real-IAD take their splits from a split file (Layout.SplitFile; see
// loadVisA and loadRealIAD) and order each split by path. Each image's
// header is read (ImageSize); each anomalous test image must have a mask
// of the same size.
//
// Errors name the path and what is wrong: root or class missing (listing
// the classes that exist), an empty split, a file that is not a readable
// image, an anomalous image without a mask, a mask whose size differs from
// its image's, and for split files the line or entry at fault. With
// opt.SkipBad, the per-file problems drop the file and are recorded in
// Class.Problems; a split left empty is still an error.
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
	if l.SplitFile != "" && f != FormatVisA && f != FormatRealIAD {
		return nil, fmt.Errorf("datasets: %s: a split file is read by the visa and realiad formats only, not by %s (class %s)", l.SplitFile, f, dir)
	}
	ld := &loader{c: &Class{Name: class, Root: root, Format: f}, dir: dir, opt: opt}
	switch f {
	case FormatVisA:
		err = ld.loadVisA(l.SplitFile)
	case FormatRealIAD:
		err = ld.loadRealIAD(l.SplitFile)
	case FormatMVTec2:
		err = ld.loadMVTec2()
	default:
		err = ld.loadFolders(l)
	}
	if err != nil {
		return nil, err
	}
	return ld.c, nil
}

// loader collects one class's items, problems and warnings.
type loader struct {
	c   *Class
	dir string // the class folder
	opt LoadOptions
}

// bad records a problem with path under SkipBad (returning nil), else
// returns it as the error.
func (ld *loader) bad(path, reason string) error {
	if ld.opt.SkipBad {
		ld.c.Problems = append(ld.c.Problems, Problem{path, reason})
		return nil
	}
	return Problem{path, reason}
}

// warn records a warning about path.
func (ld *loader) warn(path, reason string) {
	ld.c.Warnings = append(ld.c.Warnings, Problem{path, reason})
}

// loadFolders loads the MVTec-like layouts: mvtec, btad and folder.
func (ld *loader) loadFolders(l Layout) error {
	normal, suffix, maskExts := l.rules(ld.c.Format)
	ld.c.Normal = normal
	var err error
	if ld.c.Train, err = ld.folderItems(filepath.Join(ld.dir, "train", normal), "train", normal); err != nil {
		return err
	}
	if len(ld.c.Train) == 0 {
		return fmt.Errorf("datasets: %s: empty split: no usable training images", filepath.Join(ld.dir, "train", normal))
	}
	ld.c.Test, err = ld.testFolders(filepath.Join(ld.dir, "test"), filepath.Join(ld.dir, "ground_truth"), normal, suffix, maskExts)
	return err
}

// folderItems lists the images of dir as items of split and type typ
// (normal), reading their headers.
func (ld *loader) folderItems(dir, split, typ string) ([]Item, error) {
	files, err := listImages(dir, ld.bad)
	if err != nil {
		return nil, err
	}
	var out []Item
	for _, p := range files {
		it := Item{Class: ld.c.Name, Split: split, Type: typ, Path: p}
		ok, err := ld.image(&it)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, it)
		}
	}
	return out, nil
}

// testFolders lists the test items of testDir: every sub-folder (but
// gtDir, when it lies inside) by name, each one's images by name; the
// images of any folder but normal are anomalous and paired with their
// masks in gtDir/<type>/<stem><suffix><ext>.
func (ld *loader) testFolders(testDir, gtDir, normal, suffix string, maskExts []string) ([]Item, error) {
	ents, err := os.ReadDir(testDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("datasets: %s: empty split: no test folder", testDir)
	}
	if err != nil {
		return nil, fmt.Errorf("datasets: %w", err)
	}
	var out []Item
	for _, e := range ents {
		if !isDir(testDir, e) || strings.HasPrefix(e.Name(), ".") || filepath.Join(testDir, e.Name()) == gtDir {
			continue
		}
		typ := e.Name()
		files, err := listImages(filepath.Join(testDir, typ), ld.bad)
		if err != nil {
			return nil, err
		}
		for _, p := range files {
			it := Item{Class: ld.c.Name, Split: "test", Type: typ, Path: p, Anomalous: typ != normal}
			ok, err := ld.image(&it)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			if it.Anomalous {
				if ok, err = ld.pairMask(&it, gtDir, suffix, maskExts); err != nil {
					return nil, err
				} else if !ok {
					continue
				}
			}
			out = append(out, it)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("datasets: %s: empty split: no usable test images", testDir)
	}
	return out, nil
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

// image reads the header of it.Path into it.Width and it.Height and,
// with Verify, decodes the whole file.
func (ld *loader) image(it *Item) (bool, error) {
	w, h, err := ImageSize(it.Path)
	if err == nil && ld.opt.Verify {
		_, err = DecodeRGBFile(it.Path)
	}
	if err != nil {
		return false, ld.bad(it.Path, reason(err, it.Path))
	}
	it.Width, it.Height = w, h
	return true, nil
}

// pairMask finds the mask of an anomalous test image in gtDir/<type> and
// checks it (mask).
func (ld *loader) pairMask(it *Item, gtDir, suffix string, exts []string) (bool, error) {
	stem := strings.TrimSuffix(filepath.Base(it.Path), filepath.Ext(it.Path))
	gt := filepath.Join(gtDir, it.Type)
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
		return false, ld.bad(it.Path, fmt.Sprintf("anomalous image without mask (looked for %s in %s)", strings.Join(tried, " or "), gt))
	}
	return ld.mask(it)
}

// mask checks the mask it.MaskPath: a readable image of its image's size.
// With Verify it decodes the mask and warns when no pixel of it marks a
// defect under the item's rule (maskDefects).
func (ld *loader) mask(it *Item) (bool, error) {
	w, h, err := ImageSize(it.MaskPath)
	if err != nil {
		return false, ld.bad(it.MaskPath, reason(err, it.MaskPath))
	}
	if w != it.Width || h != it.Height {
		return false, ld.bad(it.MaskPath, fmt.Sprintf("mask is %dx%d but its image %s is %dx%d", w, h, it.Path, it.Width, it.Height))
	}
	if !ld.opt.Verify {
		return true, nil
	}
	n, top, err := maskDefects(it.MaskPath, it.MaskNonZero)
	if err != nil {
		return false, ld.bad(it.MaskPath, reason(err, it.MaskPath))
	}
	switch {
	case n > 0:
	case it.MaskNonZero:
		ld.warn(it.MaskPath, "mask marks no defect: every pixel is 0")
	default:
		ld.warn(it.MaskPath, fmt.Sprintf("mask marks no defect: no pixel is 255 (largest value %d), and only 255 marks a defect in a %s mask", top, ld.c.Format))
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
