package datasets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// RealIADNormal is the normal class of a Real-IAD split file that does not
// name one (meta.normal_class).
const RealIADNormal = "OK"

// realIADFile is a Real-IAD split file: meta, then the train and test
// samples. Pointers tell a missing key from an empty value.
type realIADFile struct {
	Meta *struct {
		Prefix      string `json:"prefix"`
		NormalClass string `json:"normal_class"`
	} `json:"meta"`
	Train *[]realIADSample `json:"train"`
	Test  *[]realIADSample `json:"test"`
}

// realIADSample is one sample of a split file. image_path and mask_path
// are relative to ROOT/<meta.prefix>; mask_path is null for normal images.
type realIADSample struct {
	Category     string  `json:"category"`
	AnomalyClass *string `json:"anomaly_class"`
	ImagePath    *string `json:"image_path"`
	MaskPath     *string `json:"mask_path"`
}

// RealIADSplitFile returns the split file Load reads for a Real-IAD class:
// splitFile itself, or splitFile/CLASS.json when splitFile is a folder (a
// realiad_jsons* folder), or when splitFile is empty the first existing of
// ROOT/../realiad_jsons/CLASS.json and
// ROOT/../realiad_jsons/realiad_jsons/CLASS.json (the release's plain,
// multi-view split, as its archive unpacks beside the image folders).
func RealIADSplitFile(root, class, splitFile string) (string, error) {
	if splitFile != "" {
		if dirExists(splitFile) {
			return filepath.Join(splitFile, class+".json"), nil
		}
		return splitFile, nil
	}
	tried := []string{
		filepath.Join(root, "..", "realiad_jsons", class+".json"),
		filepath.Join(root, "..", "realiad_jsons", "realiad_jsons", class+".json"),
	}
	for _, p := range tried {
		if fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("datasets: %s: no Real-IAD split file for class %s (looked for %s); give one with --split-file (a FUIAD file such as realiad_jsons_fuiad_0.1/%s.json for contaminated training)",
		filepath.Join(root, class), class, strings.Join(tried, " and "), class)
}

// loadRealIAD loads a Real-IAD class from its split file (RealIADSplitFile).
// The file is a JSON object {"meta": {"prefix", "normal_class"}, "train":
// [...], "test": [...]}, each sample {"category", "anomaly_class",
// "image_path", "mask_path"}, the paths relative to ROOT/<prefix>, where
// the prefix must name the class folder (or be empty). A sample is
// anomalous when its anomaly_class is not the normal class; its Type is
// its anomaly_class. Training samples may be anomalous (the FUIAD files'
// contamination): they become training items with Anomalous set, their
// mask kept when given. An anomalous test sample must have a mask. Each
// split is sorted by path.
func (ld *loader) loadRealIAD(splitFile string) error {
	c := ld.c
	file, err := RealIADSplitFile(c.Root, c.Name, splitFile)
	if err != nil {
		return err
	}
	sf, err := readRealIADFile(file)
	if err != nil {
		return err
	}
	c.Normal = sf.Meta.NormalClass
	if c.Normal == "" {
		c.Normal = RealIADNormal
	}
	if p := strings.Trim(path.Clean("/"+sf.Meta.Prefix), "/"); p != "" && p != c.Name {
		return fmt.Errorf("datasets: %s: meta.prefix %q names another class than %s (give the split file of class %s)", file, sf.Meta.Prefix, c.Name, c.Name)
	}
	seen := map[string]string{} // cleaned image path -> first entry
	for _, split := range []struct {
		name    string
		samples []realIADSample
		out     *[]Item
	}{{"train", *sf.Train, &c.Train}, {"test", *sf.Test, &c.Test}} {
		for i, s := range split.samples {
			entry := fmt.Sprintf("%s[%d]", split.name, i)
			if err := s.check(file, entry, seen); err != nil {
				return err
			}
			it, ok, err := ld.realIADItem(file, entry, split.name, s)
			if err != nil {
				return err
			}
			if ok {
				*split.out = append(*split.out, it)
			}
		}
		sort.Slice(*split.out, func(i, j int) bool { return (*split.out)[i].Path < (*split.out)[j].Path })
	}
	if len(c.Train) == 0 {
		return fmt.Errorf("datasets: %s: empty split: no usable training images of class %s", file, c.Name)
	}
	if len(c.Test) == 0 {
		return fmt.Errorf("datasets: %s: empty split: no usable test images of class %s", file, c.Name)
	}
	return nil
}

// check validates a sample's keys and paths; seen catches an image listed
// twice.
func (s realIADSample) check(file, entry string, seen map[string]string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("datasets: %s: %s: %s", file, entry, fmt.Sprintf(format, args...))
	}
	switch {
	case s.ImagePath == nil || *s.ImagePath == "":
		return bad("no image_path")
	case s.AnomalyClass == nil || *s.AnomalyClass == "":
		return bad("no anomaly_class")
	case !localPath(*s.ImagePath):
		return bad("image_path %q leaves the class folder", *s.ImagePath)
	case s.MaskPath != nil && *s.MaskPath != "" && !localPath(*s.MaskPath):
		return bad("mask_path %q leaves the class folder", *s.MaskPath)
	}
	key := path.Clean(*s.ImagePath)
	if first, dup := seen[key]; dup {
		return bad("image %s already listed as %s", *s.ImagePath, first)
	}
	seen[key] = entry
	return nil
}

// realIADItem checks one sample's files and makes its item; ok is false
// when SkipBad dropped it.
func (ld *loader) realIADItem(file, entry, split string, s realIADSample) (it Item, ok bool, err error) {
	where := file + " " + entry
	it = Item{Class: ld.c.Name, Split: split, Type: *s.AnomalyClass, Path: filepath.Join(ld.dir, filepath.FromSlash(*s.ImagePath)),
		Anomalous: *s.AnomalyClass != ld.c.Normal}
	if !fileExists(it.Path) {
		return it, false, ld.bad(it.Path, "image not found (listed in "+where+")")
	}
	if ok, err := ld.image(&it); !ok {
		return it, false, err
	}
	if !it.Anomalous {
		return it, true, nil
	}
	if s.MaskPath == nil || *s.MaskPath == "" {
		if split == "train" {
			return it, true, nil
		}
		return it, false, ld.bad(it.Path, "anomalous image without mask ("+where+" has no mask_path)")
	}
	it.MaskPath = filepath.Join(ld.dir, filepath.FromSlash(*s.MaskPath))
	if !fileExists(it.MaskPath) {
		return it, false, ld.bad(it.MaskPath, "mask not found (listed in "+where+")")
	}
	ok, err = ld.mask(&it)
	return it, ok, err
}

// readRealIADFile reads and checks the top level of a split file: an
// object with meta, train and test. Errors name the file, and for invalid
// JSON the line.
func readRealIADFile(file string) (*realIADFile, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("datasets: %s: Real-IAD split file not found", file)
	}
	if err != nil {
		return nil, fmt.Errorf("datasets: %s: %v", file, unwrapPath(err))
	}
	var sf realIADFile
	if err := json.Unmarshal(data, &sf); err != nil {
		return nil, jsonError(file, data, err)
	}
	for _, k := range []struct {
		key     string
		missing bool
	}{{"meta", sf.Meta == nil}, {"train", sf.Train == nil}, {"test", sf.Test == nil}} {
		if k.missing {
			return nil, fmt.Errorf("datasets: %s: not a Real-IAD split file: no %q (want an object with meta, train and test)", file, k.key)
		}
	}
	return &sf, nil
}

// jsonError names the file and, where the decoder gives an offset, the
// line of a JSON decoding error.
func jsonError(file string, data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return fmt.Errorf("datasets: %s: invalid split file: %v", file, err)
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	return fmt.Errorf("datasets: %s:%d: invalid split file: %v", file, line, err)
}
