package reports

import (
	"os"

	"github.com/softpatch/softpatch/experiments"
)

func ExampleTable_WriteMarkdown() {
	recs := map[string]experiments.Record{}
	for _, r := range []experiments.Record{
		rec("wood", 0, false, 0, "patchcore", 0.92), rec("wood", 0, false, 0, "softpatch-lof", 0.90),
		rec("wood", 0.1, true, 0, "patchcore", 0.60), rec("wood", 0.1, true, 0, "softpatch-lof", 0.88),
	} {
		recs[r.Key] = r
	}
	tables, _ := Tables(recs)
	tables[5].WriteMarkdown(os.Stdout)
	// Output:
	// **Pixel AUROC, noise 0.1, overlap**
	//
	// |  class  | patchcore | softpatch-lof |
	// |:--------|:----------|:--------------|
	// | wood    | 0.600     | 0.880         |
	// | Average | 0.600     | 0.880         |
	// | Gap     | -0.320    | -0.020        |
}
