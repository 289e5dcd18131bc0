package datasets

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// Summary is what "softpatch data inspect" reports for one class: its
// layout, how many images each split has, the masks found, the image
// sizes and the files Load skipped or warned about.
type Summary struct {
	Class        string `json:"class"`
	Format       Format `json:"format"`
	Normal       string `json:"normal"`
	TrainNormals int    `json:"train_normals"`
	// TrainAnomalies counts the anomalous training images a split file
	// put into training (Real-IAD's FUIAD files), per type.
	TrainAnomalies map[string]int `json:"train_anomalies,omitempty"`
	TestNormals    int            `json:"test_normals"`
	TestAnomalies  map[string]int `json:"test_anomalies"` // per defect type
	// ValidationNormals counts MVTec AD 2's validation images.
	ValidationNormals int `json:"validation_normals,omitempty"`
	// Unlabeled counts MVTec AD 2's images without ground truth, per
	// folder (test_private, test_private_mixed).
	Unlabeled map[string]int `json:"unlabeled,omitempty"`
	Masks     int            `json:"masks"`
	Sizes     map[string]int `json:"sizes"` // "WxH" -> images (headers)
	Problems  []Problem      `json:"problems"`
	Warnings  []Problem      `json:"warnings,omitempty"`
	Error     string         `json:"error,omitempty"` // the class could not be loaded
}

// Summarize counts a loaded class's images: train normals (and
// anomalies), test normals, test anomalies per defect type, validation and
// unlabelled images, masks and images per size (every list). Problems is
// never nil, so that it encodes as a list.
func Summarize(c *Class) Summary {
	s := Summary{Class: c.Name, Format: c.Format, Normal: c.Normal,
		TestAnomalies: map[string]int{}, Sizes: map[string]int{}, Problems: c.Problems, Warnings: c.Warnings,
		ValidationNormals: len(c.Validation)}
	if s.Problems == nil {
		s.Problems = []Problem{}
	}
	count := func(m *map[string]int, key string) {
		if *m == nil {
			*m = map[string]int{}
		}
		(*m)[key]++
	}
	for _, list := range [][]Item{c.Train, c.Test, c.Validation, c.Unlabeled} {
		for _, it := range list {
			s.Sizes[fmt.Sprintf("%dx%d", it.Width, it.Height)]++
			if it.MaskPath != "" {
				s.Masks++
			}
		}
	}
	for _, it := range c.Train {
		if it.Anomalous {
			count(&s.TrainAnomalies, it.Type)
		} else {
			s.TrainNormals++
		}
	}
	for _, it := range c.Test {
		if it.Anomalous {
			s.TestAnomalies[it.Type]++
		} else {
			s.TestNormals++
		}
	}
	for _, it := range c.Unlabeled {
		count(&s.Unlabeled, it.Split)
	}
	return s
}

// WriteText writes the summary as "softpatch data inspect" prints it.
func (s Summary) WriteText(w io.Writer) {
	if s.Error != "" {
		fmt.Fprintf(w, "class %s: %s\n", s.Class, s.Error)
		return
	}
	fmt.Fprintf(w, "class %s (%s, normal %q)\n", s.Class, s.Format, s.Normal)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	counts := func(title string, m map[string]int) {
		fmt.Fprintf(tw, "  %s\t%d\n", title, total(m))
		for _, t := range slices.Sorted(maps.Keys(m)) {
			fmt.Fprintf(tw, "    %s\t%d\n", t, m[t])
		}
	}
	fmt.Fprintf(tw, "  train normals\t%d\n", s.TrainNormals)
	if len(s.TrainAnomalies) > 0 {
		counts("train anomalies (from the split file)", s.TrainAnomalies)
	}
	if s.ValidationNormals > 0 {
		fmt.Fprintf(tw, "  validation normals\t%d\n", s.ValidationNormals)
	}
	fmt.Fprintf(tw, "  test normals\t%d\n", s.TestNormals)
	counts("test anomalies", s.TestAnomalies)
	if len(s.Unlabeled) > 0 {
		counts("unlabeled (scored, not evaluated)", s.Unlabeled)
	}
	fmt.Fprintf(tw, "  masks found\t%d\n", s.Masks)
	fmt.Fprintf(tw, "  problems\t%d\n", len(s.Problems))
	if len(s.Warnings) > 0 {
		fmt.Fprintf(tw, "  warnings\t%d\n", len(s.Warnings))
	}
	tw.Flush()
	var sizes []string
	for _, k := range slices.Sorted(maps.Keys(s.Sizes)) {
		sizes = append(sizes, fmt.Sprintf("%s (%d)", k, s.Sizes[k]))
	}
	fmt.Fprintf(w, "  image sizes: %s\n", strings.Join(sizes, ", "))
	for _, p := range s.Problems {
		fmt.Fprintf(w, "  problem: %s: %s\n", p.Path, p.Reason)
	}
	for _, p := range s.Warnings {
		fmt.Fprintf(w, "  warning: %s: %s\n", p.Path, p.Reason)
	}
}

// total sums a map's counts.
func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
