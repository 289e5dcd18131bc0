package knn

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// lcgFill mirrors lcg() of testdata/gen_golden.py.
func lcgFill(x []float32, state uint64) uint64 {
	for i := range x {
		state = state*6364136223846793005 + 1442695040888963407
		x[i] = float32(int64(state>>40)-1<<23) / (1 << 23)
	}
	return state
}

// TestGoldenFaiss compares with faiss 1.7.3's IndexFlatL2 (k = 3) on the
// fixture of testdata/gen_golden.py: distances within distTol relative plus
// normTol (|q|^2 + |m|^2), indices equal except between near-ties (see
// distTol), including exact matches of duplicated bank rows, where both
// return the lower index first.
func TestGoldenFaiss(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "faiss_l2.bin"))
	if err != nil {
		t.Fatal(err)
	}
	hdr := make([]int, 4)
	for i := range hdr {
		hdr[i] = int(int32(binary.LittleEndian.Uint32(b[4*i:])))
	}
	nq, n, d, k := hdr[0], hdr[1], hdr[2], hdr[3]
	if len(b) != 16+8*nq*k {
		t.Fatalf("faiss_l2.bin: %d bytes, want %d", len(b), 16+8*nq*k)
	}
	wantD := make([]float32, nq*k)
	wantI := make([]int32, nq*k)
	for i := range wantD {
		wantD[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[16+4*i:]))
		wantI[i] = int32(binary.LittleEndian.Uint32(b[16+4*nq*k+4*i:]))
	}

	bank := make([]float32, n*d)
	queries := make([]float32, nq*d)
	noise := make([]float32, 10*d)
	s := lcgFill(bank, 20240601)
	s = lcgFill(queries, s)
	lcgFill(noise, s)
	copy(bank[400*d:410*d], bank[:10*d])
	copy(queries[:10*d], bank[100*d:110*d])
	for i := range 10 * d {
		queries[10*d+i] = bank[200*d+i] + float32(1e-4)*noise[i]
	}
	copy(queries[20*d:25*d], bank[:5*d])

	dist := make([]float32, nq*k)
	idx := make([]int32, nq*k)
	if err := NewIndex(bank, n, d).Search(dist, idx, queries, nq, k, 4*1000); err != nil {
		t.Fatal(err)
	}
	ref, mnorm := refSearch(bank, queries, nq, n, d)
	ties, maxRel := 0, 0.0
	for i := range nq {
		for p := range k {
			g, w := idx[i*k+p], wantI[i*k+p]
			scale := normTol * (ref[i].qn + mnorm[w])
			if e := math.Abs(float64(dist[i*k+p]) - float64(wantD[i*k+p])); e > distTol*float64(wantD[i*k+p])+scale {
				t.Errorf("query %d rank %d: distance %v, faiss %v", i, p, dist[i*k+p], wantD[i*k+p])
			} else if wantD[i*k+p] > 1 {
				maxRel = max(maxRel, e/float64(wantD[i*k+p]))
			}
			if g != w {
				dg, dw := ref[i].d[g], ref[i].d[w]
				scale = normTol * (ref[i].qn + max(mnorm[g], mnorm[w]))
				if math.Abs(dg-dw) > distTol*max(dg, dw)+scale {
					t.Errorf("query %d rank %d: index %d, faiss %d (float64 distances %v, %v)", i, p, g, w, dg, dw)
				}
				ties++
			}
		}
	}
	for i := 20; i < 25; i++ {
		if idx[i*k] != int32(i-20) || idx[i*k+1] != int32(400+i-20) || dist[i*k] != 0 || dist[i*k+1] != 0 {
			t.Errorf("query %d (duplicated bank row %d): got %v %v", i, i-20, dist[i*k:i*k+2], idx[i*k:i*k+2])
		}
	}
	t.Logf("max relative distance difference (faiss distance > 1): %.2g; near-tie index swaps: %d", maxRel, ties)
}
