package datasets

import "fmt"

// Summary is what "softpatch data inspect" reports for one class: its
// layout, how many images each split has, the masks found, the image
// sizes and the files Load skipped.
type Summary struct {
	Class         string         `json:"class"`
	Format        Format         `json:"format"`
	Normal        string         `json:"normal"`
	TrainNormals  int            `json:"train_normals"`
	TestNormals   int            `json:"test_normals"`
	TestAnomalies map[string]int `json:"test_anomalies"` // per defect type
	Masks         int            `json:"masks"`
	Sizes         map[string]int `json:"sizes"` // "WxH" -> images (headers)
	Problems      []Problem      `json:"problems"`
	Error         string         `json:"error,omitempty"` // the class could not be loaded
}

// Summarize counts a loaded class's images: train normals, test normals,
// test anomalies per defect type, masks and images per size. Problems is
// never nil, so that it encodes as a list.
func Summarize(c *Class) Summary {
	s := Summary{Class: c.Name, Format: c.Format, Normal: c.Normal, TrainNormals: len(c.Train),
		TestAnomalies: map[string]int{}, Sizes: map[string]int{}, Problems: c.Problems}
	if s.Problems == nil {
		s.Problems = []Problem{}
	}
	for _, it := range append(append([]Item(nil), c.Train...), c.Test...) {
		s.Sizes[fmt.Sprintf("%dx%d", it.Width, it.Height)]++
		switch {
		case it.Split == "train":
		case it.Anomalous:
			s.TestAnomalies[it.Type]++
		default:
			s.TestNormals++
		}
		if it.MaskPath != "" {
			s.Masks++
		}
	}
	return s
}
