package main

import (
	"fmt"

	"github.com/softpatch/softpatch/engine/backbone"
)

func runWeights(args []string) error {
	if err := subverb(args, "inspect", "weights inspect FILE"); err != nil {
		return err
	}
	fs := newFlags("weights inspect", "weights inspect FILE", "softpatch weights inspect ~/.cache/torch/hub/checkpoints/wide_resnet50_2-95faca4d.pth")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("need exactly one FILE")
	}
	path := fs.Arg(0)
	params, err := backbone.ReadCheckpoint(path)
	if err != nil {
		return err
	}
	total := 0
	for _, t := range params {
		total += len(t.Data)
	}
	sum, err := backbone.HashFile(path)
	if err != nil {
		return err
	}
	fmt.Printf("file        %s\nsha256      %s\nentries     %d\nvalues      %d\n", path, sum, len(params), total)
	arch, err := backbone.MatchArch(params)
	if err != nil {
		fmt.Println("arch        none of the known architectures")
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Printf("arch        %s\nparameters  %d (learnable; BatchNorm running statistics not counted)\n", arch.Name, arch.ParamCount())
	return nil
}
