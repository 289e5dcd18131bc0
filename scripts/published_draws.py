#!/usr/bin/python3
"""Write the draws of one run of the published SoftPatch code as a softpatch draws file.

    /usr/bin/python3 scripts/published_draws.py RESULT.json DUMP_DIR OUT.draws.npz

RESULT.json and DUMP_DIR are what the reference driver run_reference.py (outside this
repository, in $REFERENCE_TOOLS; it runs the published main.py flow offline) writes with
--out and --dump_dir: the injected images (noise_files), the two torch.nn.Linear weights
the published code draws (the noise discriminator's first, the coreset's second) and the
start points of its np.random.choice. OUT is numpy's npz in the layout of
docs/method.md, section 5.9, for `softpatch eval --draws OUT`. Needs numpy only.
"""
import json
import os
import sys

import numpy as np

from draws_compare import dump_array  # beside this script


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    result_path, dump, out = sys.argv[1:]
    with open(result_path) as f:
        result = json.load(f)
    draws = {}
    if result.get("noise_files"):
        draws["noise_files"] = np.array([p.replace(os.sep, "/") for p in result["noise_files"]])
    for key, name in (("discriminator_projection", "proj_noise_discriminator"), ("coreset_projection", "proj_coreset")):
        w = dump_array(dump, name)
        if w is not None:
            draws[key] = w.astype("<f4")
    starts = dump_array(dump, "coreset_start_points")
    if starts is not None:
        draws["coreset_start_points"] = starts.astype("<i8").reshape(-1)
    np.savez(out, **draws)
    print(out + ": " + ", ".join(f"{k} {v.dtype} {list(v.shape)}" for k, v in draws.items()))


if __name__ == "__main__":
    main()
