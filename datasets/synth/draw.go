package synth

import (
	"math"
	"math/rand/v2"
)

// canvas is a float RGB image in grey levels (0..255 nominal), row-major,
// three values per pixel.
type canvas struct {
	n   int
	pix []float32
}

func newCanvas(n int) *canvas { return &canvas{n: n, pix: make([]float32, 3*n*n)} }

func (c *canvas) clone() *canvas {
	return &canvas{n: c.n, pix: append([]float32(nil), c.pix...)}
}

// rgb is a colour in grey levels.
type rgb [3]float64

func (a rgb) scale(k float64) rgb { return rgb{a[0] * k, a[1] * k, a[2] * k} }

func (a rgb) mul(b rgb) rgb { return rgb{a[0] * b[0], a[1] * b[1], a[2] * b[2]} }

func (a rgb) add(b rgb) rgb { return rgb{a[0] + b[0], a[1] + b[1], a[2] + b[2]} }

func lerpRGB(a, b rgb, t float64) rgb {
	return rgb{a[0] + (b[0]-a[0])*t, a[1] + (b[1]-a[1])*t, a[2] + (b[2]-a[2])*t}
}

// jitterRGB returns c with every channel moved by up to ±d.
func jitterRGB(r *rand.Rand, c rgb, d float64) rgb {
	for i := range c {
		c[i] += uniform(r, -d, d)
	}
	return c
}

// logu draws log-uniformly from [lo, hi): small sizes as often as large.
func logu(r *rand.Rand, lo, hi float64) float64 { return lo * math.Exp(r.Float64()*math.Log(hi/lo)) }

func uniform(r *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }

func clamp01(x float64) float64 { return math.Max(0, math.Min(1, x)) }

func smoothstep(e0, e1, x float64) float64 {
	t := clamp01((x - e0) / (e1 - e0))
	return t * t * (3 - 2*t)
}

// hash2 mixes a seed and a lattice point into 64 pseudo-random bits
// (splitmix64 finaliser).
func hash2(seed uint64, x, y int64) uint64 {
	h := seed ^ uint64(x)*0x9E3779B97F4A7C15 ^ uint64(y)*0xC2B2AE3D27D4EB4F
	h ^= h >> 30
	h *= 0xBF58476D1CE4E5B9
	h ^= h >> 27
	h *= 0x94D049BB133111EB
	h ^= h >> 31
	return h
}

func lattice(seed uint64, x, y int64) float64 {
	return float64(hash2(seed, x, y)>>11)/float64(1<<53)*2 - 1
}

// vnoise is smooth value noise in [-1, 1] with unit lattice spacing.
func vnoise(seed uint64, x, y float64) float64 {
	fx, fy := math.Floor(x), math.Floor(y)
	ix, iy := int64(fx), int64(fy)
	tx, ty := x-fx, y-fy
	tx = tx * tx * (3 - 2*tx)
	ty = ty * ty * (3 - 2*ty)
	a := lattice(seed, ix, iy)
	b := lattice(seed, ix+1, iy)
	c := lattice(seed, ix, iy+1)
	d := lattice(seed, ix+1, iy+1)
	return (a+(b-a)*tx)*(1-ty) + (c+(d-c)*tx)*ty
}

// fbm sums oct octaves of value noise (roughly in [-1, 1]).
func fbm(seed uint64, x, y float64, oct int) float64 {
	s, amp, norm := 0.0, 1.0, 0.0
	for o := 0; o < oct; o++ {
		s += amp * vnoise(seed+uint64(o)*0x632BE59BD9B4E019, x, y)
		norm += amp
		amp *= 0.5
		x, y = x*2.03+17.1, y*2.03-9.7
	}
	return s / norm
}

// cover is a coverage map in [0, 1] over the image, with the bounding box
// of its non-zero pixels, so that blending visits only that box.
type cover struct {
	n              int
	a              []float32
	x0, y0, x1, y1 int     // pixel box, x1 and y1 exclusive
	maxRad         float64 // largest blob radius painted
}

func newCover(n int) *cover {
	return &cover{n: n, a: make([]float32, n*n), x0: n, y0: n}
}

// box clips a float box (with margin) to the image, returning the pixel range.
func (c *cover) box(minX, minY, maxX, maxY float64) (x0, y0, x1, y1 int) {
	x0 = max(0, int(math.Floor(minX)))
	y0 = max(0, int(math.Floor(minY)))
	x1 = min(c.n, int(math.Ceil(maxX))+1)
	y1 = min(c.n, int(math.Ceil(maxY))+1)
	return
}

func (c *cover) grow(x0, y0, x1, y1 int) {
	c.x0, c.y0 = min(c.x0, x0), min(c.y0, y0)
	c.x1, c.y1 = max(c.x1, x1), max(c.y1, y1)
}

// paint evaluates f (coverage in [0,1] at pixel centre x, y) over the box and
// keeps the maximum with what is there.
func (c *cover) paint(minX, minY, maxX, maxY float64, f func(x, y float64) float64) {
	x0, y0, x1, y1 := c.box(minX, minY, maxX, maxY)
	if x0 >= x1 || y0 >= y1 {
		return
	}
	c.grow(x0, y0, x1, y1)
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			v := float32(clamp01(f(float64(x)+0.5, float64(y)+0.5)))
			if i := y*c.n + x; v > c.a[i] {
				c.a[i] = v
			}
		}
	}
}

// times multiplies the coverage by a per-pixel weight (e.g. an object's
// support) and a constant strength.
func (c *cover) times(w []float32, k float64) {
	for y := c.y0; y < c.y1; y++ {
		for x := c.x0; x < c.x1; x++ {
			i := y*c.n + x
			v := c.a[i] * float32(k)
			if w != nil {
				v *= w[i]
			}
			c.a[i] = v
		}
	}
}

// pt is a point in pixel coordinates.
type pt struct{ x, y float64 }

func segDist(p, a, b pt) float64 {
	dx, dy := b.x-a.x, b.y-a.y
	l2 := dx*dx + dy*dy
	t := 0.0
	if l2 > 0 {
		t = clamp01(((p.x-a.x)*dx + (p.y-a.y)*dy) / l2)
	}
	ex, ey := p.x-(a.x+t*dx), p.y-(a.y+t*dy)
	return math.Sqrt(ex*ex + ey*ey)
}

// stroke paints an antialiased polyline of width w (widths may vary per
// vertex when ws is given).
func (c *cover) stroke(path []pt, w float64, ws []float64) {
	for k := 0; k+1 < len(path); k++ {
		a, b := path[k], path[k+1]
		wa, wb := w, w
		if ws != nil {
			wa, wb = ws[k], ws[k+1]
		}
		m := math.Max(wa, wb)/2 + 1.5
		c.paint(math.Min(a.x, b.x)-m, math.Min(a.y, b.y)-m, math.Max(a.x, b.x)+m, math.Max(a.y, b.y)+m,
			func(x, y float64) float64 {
				p := pt{x, y}
				dx, dy := b.x-a.x, b.y-a.y
				l2 := dx*dx + dy*dy
				t := 0.0
				if l2 > 0 {
					t = clamp01(((p.x-a.x)*dx + (p.y-a.y)*dy) / l2)
				}
				hw := (wa + (wb-wa)*t) / 2
				return hw + 0.5 - segDist(p, a, b)
			})
	}
}

// blob paints an irregular filled shape of mean radius rad around ctr,
// elongated by aspect along angle ang; soft is the width (as a fraction of
// the radius) of the fading rim (0 for a crisp antialiased edge).
func (c *cover) blob(ctr pt, rad, aspect, ang, soft, rough float64, seed uint64) {
	ca, sa := math.Cos(ang), math.Sin(ang)
	c.maxRad = math.Max(c.maxRad, rad*math.Max(aspect, 1/aspect))
	ext := rad * math.Max(aspect, 1/aspect) * (1 + rough) * 1.1
	c.paint(ctr.x-ext-2, ctr.y-ext-2, ctr.x+ext+2, ctr.y+ext+2, func(x, y float64) float64 {
		dx, dy := x-ctr.x, y-ctr.y
		u := (dx*ca + dy*sa) / aspect
		v := (-dx*sa + dy*ca) * aspect
		d := math.Hypot(u, v)
		th := math.Atan2(v, u)
		r := rad * (1 + rough*fbm(seed, math.Cos(th)*1.7+3, math.Sin(th)*1.7+3, 3))
		if soft <= 0 {
			return r - d + 0.5
		}
		return 1 - smoothstep(r*(1-soft), r, d)
	})
}

// walk returns a random polyline of k steps of length step from p0, with
// heading ang and turning by up to turn radians per step.
func walk(r *rand.Rand, p0 pt, ang, step, turn float64, k int) []pt {
	path := []pt{p0}
	for i := 0; i < k; i++ {
		ang += uniform(r, -turn, turn)
		p0 = pt{p0.x + step*math.Cos(ang), p0.y + step*math.Sin(ang)}
		path = append(path, p0)
	}
	return path
}

// blend moves def towards target(pixel, current colour) by the coverage.
func blend(def *canvas, c *cover, target func(i int, cur rgb) rgb) {
	for y := c.y0; y < c.y1; y++ {
		for x := c.x0; x < c.x1; x++ {
			i := y*c.n + x
			a := float64(c.a[i])
			if a <= 0 {
				continue
			}
			p := def.pix[3*i : 3*i+3]
			cur := rgb{float64(p[0]), float64(p[1]), float64(p[2])}
			t := target(i, cur)
			for ch := 0; ch < 3; ch++ {
				p[ch] = float32(cur[ch] + (t[ch]-cur[ch])*a)
			}
		}
	}
}
