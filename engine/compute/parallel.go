package compute

import "sync"

// ParallelFor splits [0, n) into at most Threads() contiguous chunks of at
// least grain items and runs fn on each in its own goroutine (the first on
// the calling goroutine). It returns when all chunks are done.
func ParallelFor(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	t := Threads()
	if grain < 1 {
		grain = 1
	}
	if m := n / grain; t > m {
		t = m
	}
	if t <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	wg.Add(t - 1)
	for i := 1; i < t; i++ {
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(i*n/t, (i+1)*n/t)
	}
	fn(0, n/t)
	wg.Wait()
}
