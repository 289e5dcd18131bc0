package datasets

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// DefaultVisASplit is the split file a VisA root is read with when
// Layout.SplitFile is empty, relative to the root: the one-class split of
// the release.
const DefaultVisASplit = "split_csv/1cls.csv"

// visaColumns are the columns a VisA split CSV must have (in any order).
var visaColumns = []string{"object", "split", "label", "image", "mask"}

// VisANormal and VisAAnomaly are the Type of VisA's normal items and of
// its anomalous ones whose defect is not named by CLASS/image_anno.csv.
const (
	VisANormal  = "normal"
	VisAAnomaly = "anomaly"
)

// visaRow is one row of a split CSV for the class being loaded.
type visaRow struct {
	line                      int
	split, label, image, mask string
}

// loadVisA loads a VisA class from the split CSV splitFile (default
// ROOT/DefaultVisASplit). Its columns are object, split (train or test),
// label (normal or anomaly), image and mask, the paths relative to the
// root with forward slashes; rows of other objects are skipped. Train
// items are the class's train rows, test items its test rows, each split
// sorted by path (Data/Images/Anomaly before Data/Images/Normal, as the
// release's preparation script's test/bad sorts before test/good). Every
// item has MaskNonZero set. An anomalous test row must name a mask.
//
// The defect names come from CLASS/image_anno.csv when there is one (see
// visaDefects); the class loads without it.
func (ld *loader) loadVisA(splitFile string) error {
	c := ld.c
	c.Normal = VisANormal
	if splitFile == "" {
		splitFile = filepath.Join(c.Root, filepath.FromSlash(DefaultVisASplit))
	}
	rows, err := readVisASplit(splitFile, c.Name)
	if err != nil {
		return err
	}
	defects, err := ld.visaDefects()
	if err != nil {
		return err
	}
	for _, r := range rows {
		it, ok, err := ld.visaItem(splitFile, r, defects)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if it.Split == "train" {
			c.Train = append(c.Train, it)
		} else {
			c.Test = append(c.Test, it)
		}
	}
	byPath := func(items []Item) {
		sort.Slice(items, func(i, j int) bool { return items[i].Path < items[j].Path })
	}
	byPath(c.Train)
	byPath(c.Test)
	if len(c.Train) == 0 {
		return fmt.Errorf("datasets: %s: empty split: no usable training images of class %s", splitFile, c.Name)
	}
	if len(c.Test) == 0 {
		return fmt.Errorf("datasets: %s: empty split: no usable test images of class %s", splitFile, c.Name)
	}
	return nil
}

// visaItem checks one row's files and makes its item; ok is false when
// SkipBad dropped it.
func (ld *loader) visaItem(splitFile string, r visaRow, defects map[string]string) (it Item, ok bool, err error) {
	where := fmt.Sprintf("%s line %d", splitFile, r.line)
	it = Item{Class: ld.c.Name, Split: r.split, Type: VisANormal, Path: ld.rootPath(r.image), MaskNonZero: true}
	if r.label == "anomaly" {
		it.Anomalous = true
		it.Type = VisAAnomaly
		if d := defects[path.Clean(r.image)]; d != "" {
			it.Type = d
		}
	}
	if !fileExists(it.Path) {
		return it, false, ld.bad(it.Path, "image not found (listed on "+where+")")
	}
	if ok, err := ld.image(&it); !ok {
		return it, false, err
	}
	if !it.Anomalous {
		return it, true, nil
	}
	if r.mask == "" {
		if it.Split == "train" {
			return it, true, nil // a labelled training anomaly needs no mask
		}
		return it, false, ld.bad(it.Path, "anomalous image without mask ("+where+" names none)")
	}
	it.MaskPath = ld.rootPath(r.mask)
	if !fileExists(it.MaskPath) {
		return it, false, ld.bad(it.MaskPath, "mask not found (listed on "+where+")")
	}
	ok, err = ld.mask(&it)
	return it, ok, err
}

// rootPath joins a path of a split file (relative to the root, forward
// slashes) to the root.
func (ld *loader) rootPath(rel string) string {
	return filepath.Join(ld.c.Root, filepath.FromSlash(rel))
}

// readVisASplit reads the rows of class from a VisA split CSV. Errors name
// the file and line: the file missing, a missing column, a row with a
// wrong number of fields, a split other than train or test, a label other
// than normal or anomaly, an empty or unsafe image path, an image listed
// twice, and the class absent from the file.
func readVisASplit(file, class string) ([]visaRow, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("datasets: %s: VisA split CSV not found (the release has split_csv/1cls.csv; give another with --split-file)", file)
	}
	if err != nil {
		return nil, fmt.Errorf("datasets: %s: %v", file, unwrapPath(err))
	}
	defer f.Close()
	r := csv.NewReader(f)
	col, err := csvHeader(r, file, visaColumns)
	if err != nil {
		return nil, err
	}
	var rows []visaRow
	objects := map[string]bool{}
	seen := map[string]int{} // image -> line
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("datasets: %s: %v", file, err)
		}
		line, _ := r.FieldPos(0)
		get := func(name string) string { return strings.TrimSpace(rec[col[name]]) }
		obj := get("object")
		objects[obj] = true
		if obj != class {
			continue
		}
		row := visaRow{line: line, split: strings.ToLower(get("split")), label: strings.ToLower(get("label")),
			image: get("image"), mask: get("mask")}
		if err := row.check(file); err != nil {
			return nil, err
		}
		key := path.Clean(row.image)
		if first, dup := seen[key]; dup {
			return nil, fmt.Errorf("datasets: %s:%d: image %s already listed on line %d", file, line, row.image, first)
		}
		seen[key] = line
		rows = append(rows, row)
	}
	if !objects[class] {
		names := slices.Sorted(maps.Keys(objects))
		return nil, fmt.Errorf("datasets: %s: class %q not in the split file (objects: %s)", file, class, strings.Join(names, ", "))
	}
	return rows, nil
}

// check validates a row's values.
func (r visaRow) check(file string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("datasets: %s:%d: %s", file, r.line, fmt.Sprintf(format, args...))
	}
	switch {
	case r.split != "train" && r.split != "test":
		return bad("split %q, want train or test", r.split)
	case r.label != "normal" && r.label != "anomaly":
		return bad("label %q, want normal or anomaly", r.label)
	case r.image == "":
		return bad("no image path")
	case !localPath(r.image):
		return bad("image path %q leaves the dataset root", r.image)
	case r.mask != "" && !localPath(r.mask):
		return bad("mask path %q leaves the dataset root", r.mask)
	}
	return nil
}

// localPath reports whether a slash-separated path stays inside the
// folder it is relative to.
func localPath(p string) bool {
	return filepath.IsLocal(filepath.FromSlash(p))
}

// csvHeader reads the header of a CSV and returns each wanted column's
// index; a missing column is an error naming the file's line 1.
func csvHeader(r *csv.Reader, file string, want []string) (map[string]int, error) {
	head, err := r.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("datasets: %s: empty file (want a header %s)", file, strings.Join(want, ","))
	}
	if err != nil {
		return nil, fmt.Errorf("datasets: %s: %v", file, err)
	}
	col := map[string]int{}
	for i, h := range head {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, dup := col[h]; !dup {
			col[h] = i
		}
	}
	var missing []string
	for _, w := range want {
		if _, ok := col[w]; !ok {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("datasets: %s:1: missing column %s (header: %s; want %s)", file,
			strings.Join(missing, ", "), strings.Join(head, ","), strings.Join(want, ","))
	}
	return col, nil
}

// visaDefects reads the defect labels of the class from
// ROOT/CLASS/image_anno.csv, the release's per-object annotation file
// (columns image, label, mask; image relative to the root; label "normal"
// or the defect description, e.g. "scratch" or "bent, scratch"). It returns
// the labels by image path (cleaned, forward slashes), nil when there is no
// such file. A file without image and label columns is ignored with a
// warning; one that is not valid CSV is an error naming its line.
func (ld *loader) visaDefects() (map[string]string, error) {
	file := filepath.Join(ld.dir, "image_anno.csv")
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("datasets: %s: %v", file, unwrapPath(err))
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	col, err := csvHeader(r, file, []string{"image", "label"})
	if err != nil {
		ld.warn(file, "defect names not read: line "+strings.TrimPrefix(reason(err, file), file+":"))
		return nil, nil
	}
	out := map[string]string{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("datasets: %s: %v", file, err)
		}
		if col["image"] >= len(rec) || col["label"] >= len(rec) {
			continue
		}
		img, label := strings.TrimSpace(rec[col["image"]]), strings.TrimSpace(rec[col["label"]])
		if img == "" || label == "" || strings.EqualFold(label, VisANormal) {
			continue
		}
		key := path.Clean(img)
		out[key] = label
		if !strings.HasPrefix(key, ld.c.Name+"/") { // relative to the class folder
			out[ld.c.Name+"/"+key] = label
		}
	}
}

// fileExists reports whether p is an existing file (not a folder).
func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
