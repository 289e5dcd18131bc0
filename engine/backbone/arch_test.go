package backbone

import "testing"

// The counts are torchvision 0.14's sum(p.numel() for p in model.parameters()).
func TestParamCountMatchesTorchvision(t *testing.T) {
	for _, c := range []struct {
		arch Arch
		want int
	}{
		{ResNet50, 25557032},
		{WideResNet50_2, 68883240},
		{WideResNet101_2, 126886696},
	} {
		if got := c.arch.ParamCount(); got != c.want {
			t.Errorf("%s: %d parameters, torchvision has %d", c.arch.Name, got, c.want)
		}
	}
}

func TestParamsHaveTorchvisionKeys(t *testing.T) {
	n := 0
	for _, p := range WideResNet50_2.Params() {
		if !p.Optional {
			n++
		}
	}
	// len(wide_resnet50_2().state_dict()) is 320, of which 53 are num_batches_tracked.
	if n != 267 {
		t.Errorf("wide_resnet50_2 has %d required state_dict entries, torchvision 267", n)
	}
}

// WRN-50-2 to layer3 at 224x224 is 18.4 GFLOP per image (the figure).
func TestFLOPsWideResNet50Layer3(t *testing.T) {
	got := WideResNet50_2.FLOPs(224, 224, 2) / 1e9
	if got < 18.3 || got > 18.5 {
		t.Errorf("wide_resnet50_2 to layer3 at 224: %.2f GFLOP, want about 18.4", got)
	}
}
