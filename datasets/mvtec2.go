package datasets

import (
	"fmt"
	"path/filepath"
)

// MVTec2Unlabeled is the Type of MVTec AD 2's private test images, which
// ship without labels.
const MVTec2Unlabeled = "unlabeled"

// mvtec2Private are MVTec AD 2's test folders without ground truth, in the
// order Class.Unlabeled lists them.
var mvtec2Private = []string{"test_private", "test_private_mixed"}

// loadMVTec2 loads an MVTec AD 2 class: train items from train/good,
// Validation from validation/good (absent: none), test items from the
// folders of test_public as in MVTec AD (good is normal, every other
// folder, bad in the release, anomalous) with masks
// test_public/ground_truth/<type>/<stem>_mask.png, and Unlabeled from the
// images directly in test_private and test_private_mixed (absent: none),
// each folder sorted by file name.
func (ld *loader) loadMVTec2() error {
	c := ld.c
	c.Normal = "good"
	var err error
	trainDir := filepath.Join(ld.dir, "train", c.Normal)
	if c.Train, err = ld.folderItems(trainDir, "train", c.Normal); err != nil {
		return err
	}
	if len(c.Train) == 0 {
		return fmt.Errorf("datasets: %s: empty split: no usable training images", trainDir)
	}
	if dir := filepath.Join(ld.dir, "validation", c.Normal); dirExists(dir) {
		if c.Validation, err = ld.folderItems(dir, "validation", c.Normal); err != nil {
			return err
		}
	}
	test := filepath.Join(ld.dir, "test_public")
	if c.Test, err = ld.testFolders(test, filepath.Join(test, "ground_truth"), c.Normal, "_mask", []string{".png"}); err != nil {
		return err
	}
	for _, split := range mvtec2Private {
		dir := filepath.Join(ld.dir, split)
		if !dirExists(dir) {
			continue
		}
		items, err := ld.folderItems(dir, split, MVTec2Unlabeled)
		if err != nil {
			return err
		}
		c.Unlabeled = append(c.Unlabeled, items...)
	}
	return nil
}
