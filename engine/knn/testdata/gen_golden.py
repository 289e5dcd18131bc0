#!/usr/bin/python3
"""Writes faiss_l2.bin, the golden fixture of engine/knn (TestGoldenFaiss).

Run with Debian's python3 and python3-faiss (apt-get install python3-faiss):

    cd engine/knn/testdata && /usr/bin/python3 gen_golden.py

Inputs are not stored: both sides generate them with the same 64-bit LCG
(lcg() here, lcgFill in golden_test.go), whose outputs are multiples of 2^-23
in [-1, 1) and so exact in float32. The bank is 500 x 64, with rows 400..409
copies of rows 0..9; the 200 queries are 200 x 64, with queries 0..9 copies
of bank rows 100..109 (exact matches) and queries 10..19 copies of bank rows
200..209 plus 1e-4 times fresh LCG values (near-duplicates) and queries
20..24 copies of bank rows 0..4 (each matches two bank rows exactly).

faiss.IndexFlatL2 returns, for k = 3, squared L2 distances (float32) and
indices (int64, stored as int32). File layout, little endian:
    int32 nq, n, d, k; float32 dist[nq*k]; int32 idx[nq*k].
"""
import struct

import faiss
import numpy as np

NQ, N, D, K = 200, 500, 64, 3
SEED = 20240601


def lcg(count, state):
    out = np.empty(count, dtype=np.float32)
    for i in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out[i] = ((state >> 40) - (1 << 23)) / float(1 << 23)
    return out, state


def main():
    state = SEED
    bank, state = lcg(N * D, state)
    queries, state = lcg(NQ * D, state)
    noise, state = lcg(10 * D, state)
    bank = bank.reshape(N, D)
    queries = queries.reshape(NQ, D)
    bank[400:410] = bank[0:10]
    queries[0:10] = bank[100:110]
    queries[10:20] = bank[200:210] + np.float32(1e-4) * noise.reshape(10, D)
    queries[20:25] = bank[0:5]

    index = faiss.IndexFlatL2(D)
    index.add(bank)
    dist, idx = index.search(queries, K)
    with open("faiss_l2.bin", "wb") as f:
        f.write(struct.pack("<4i", NQ, N, D, K))
        f.write(dist.astype("<f4").tobytes())
        f.write(idx.astype("<i4").tobytes())
    print("faiss", faiss.__version__, "wrote faiss_l2.bin")


if __name__ == "__main__":
    main()
