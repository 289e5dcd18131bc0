package cflow

import "math"

// Schedule is the published learning-rate schedule: a cosine decay per
// meta-epoch from LR towards LR/1000, and during the first WarmEpochs
// meta-epochs a linear warm-up per image batch from LR/10 to the cosine's
// value at meta-epoch WarmEpochs.
type Schedule struct {
	LR         float64
	MetaEpochs int
	SubEpochs  int
	WarmEpochs int
}

// PublishedSchedule is the published code's: lr 2e-4, 25 meta-epochs of 8
// sub-epochs, 2 warm-up meta-epochs.
var PublishedSchedule = Schedule{LR: 2e-4, MetaEpochs: 25, SubEpochs: 8, WarmEpochs: 2}

// cosine is the learning rate of meta-epoch e without warm-up.
func (s Schedule) cosine(e int) float64 {
	etaMin := s.LR * 1e-3
	return etaMin + (s.LR-etaMin)*(1+math.Cos(math.Pi*float64(e)/float64(s.MetaEpochs)))/2
}

// At is the learning rate of image batch i of sub-epoch sub of meta-epoch
// e (all counted from 0), with batches image batches per sub-epoch.
func (s Schedule) At(e, sub, i, batches int) float64 {
	if e >= s.WarmEpochs {
		return s.cosine(e)
	}
	total := batches * s.SubEpochs
	p := float64(i+sub*batches+e*total) / float64(s.WarmEpochs*total)
	from, to := s.LR/10, s.cosine(s.WarmEpochs)
	return from + p*(to-from)
}
