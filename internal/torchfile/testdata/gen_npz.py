#!/usr/bin/python3
"""Small .npz fixtures for internal/torchfile's ReadNPZ tests.

Rerun from the repository root with
    /usr/bin/python3 internal/torchfile/testdata/gen_npz.py
(Debian's python3-numpy). It writes, next to itself:

  arrays.npz       np.savez: float32 2-D, int64 1-D, float64 2-D, a float64
                   0-d scalar, uint8, a unicode string array (<U6, with an
                   empty string and non-ASCII text)
  compressed.npz   np.savez_compressed (deflated members): float32 and int64
  object.npz       a float32 array and an object array (dtype |O, pickled by
                   numpy), which the reader must refuse
  npz.json         per readable file, per key: dtype, shape and the values
                   row-major (floats as Python floats, strings as str), one
                   array a line
"""

import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    arrays = {
        "f32": (np.arange(6, dtype=np.float32).reshape(2, 3) / 7 - 0.25),
        "i64": np.array([0, -1, 2**40 + 3, -(2**62), 7], dtype=np.int64),
        "f64": np.array([[0.1, -1e300], [5e-324, 2.0 / 3]], dtype=np.float64),
        "scalar": np.float64(2.5),
        "u8": np.array([0, 1, 254, 255], dtype=np.uint8),
        "names": np.array(["good", "", "héllo", "日本", "tail  "]),
    }
    compressed = {
        "big": np.tile(np.linspace(-1, 1, 9, dtype=np.float32), (40, 1)),
        "idx": np.arange(50, dtype=np.int64) * 3,
    }
    np.savez(os.path.join(HERE, "arrays.npz"), **arrays)
    np.savez_compressed(os.path.join(HERE, "compressed.npz"), **compressed)
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = {"a": 1}, None
    np.savez(os.path.join(HERE, "object.npz"), ok=np.ones(2, dtype=np.float32), obj=obj)

    files = []
    for name, d in (("arrays.npz", arrays), ("compressed.npz", compressed)):
        with np.load(os.path.join(HERE, name)) as z:
            lines = []
            for k in d:
                rec = {"dtype": z[k].dtype.str, "shape": list(z[k].shape), "values": z[k].flatten().tolist()}
                lines.append("  %s: %s" % (json.dumps(k), json.dumps(rec, ensure_ascii=False)))
        files.append(" %s: {\n%s\n }" % (json.dumps(name), ",\n".join(lines)))
    with open(os.path.join(HERE, "npz.json"), "w") as f:
        f.write("{\n" + ",\n".join(files) + "\n}\n")


if __name__ == "__main__":
    main()
