#!/usr/bin/python3
"""Writes the .npz fixtures of internal/npy's tests with numpy (Debian's python3-numpy):

    cd internal/npy/testdata && /usr/bin/python3 gen_npz.py
"""
import numpy as np

arrays = dict(
    f32=np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
    f64=np.array([0.5, -1.25, 1e300]),
    i64=np.array([3, -1, 1 << 40], dtype=np.int64),
    names=np.array(["wood/test/hole/000.png", "wood/test/färbung/1.png"]),
)
np.savez("numpy_savez.npz", **arrays)
np.savez_compressed("numpy_compressed.npz", **arrays)
np.savez("numpy_pickle.npz", ok=np.zeros(2, dtype=np.float32), obj=np.array([{"a": 1}, None], dtype=object))
