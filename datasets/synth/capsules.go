package synth

import (
	"math"
	"math/rand/v2"
	"slices"
)

// The capsules class is a VisA-like multi-instance scene: a dark tray with
// a loose grid of two-tone gelatin capsules. Each capsule is a stadium
// (a segment of half-length L swept by a disc of radius R) in its own
// frame, u along the axis and v across it.

// Grid of capsule slots: columns by rows.
const (
	capsuleCols = 3
	capsuleRows = 4
)

// capsule is one instance of the capsules class.
type capsule struct {
	c      pt      // centre
	ct, st float64 // cosine and sine of the axis angle
	L, R   float64 // half-length of the axis segment and the cap's radius
	flip   float64 // +1 or -1: which end the coloured cap is on
	seam   float64 // where, along flip·u, the cap ends and the body begins
	capCol rgb     // cap colour
	bodCol rgb     // body colour
	// deformations (squeeze defect): a dent of depth dentD (share of the
	// radius) and width dentW at dentU on side dentSide (+1, -1, or 0 for
	// both sides), and a bend of the axis (ends moved by bend·(L+R)).
	dentU, dentW, dentD float64
	dentSide            int
	bend                float64
	x0, y0, x1, y1      int // pixel box of the capsule and its shadow
}

// frame returns a point in the capsule's frame.
func (c *capsule) frame(x, y float64) (u, v float64) {
	dx, dy := x-c.c.x, y-c.c.y
	u = dx*c.ct + dy*c.st
	v = -dx*c.st + dy*c.ct
	if c.bend != 0 {
		v -= c.bend * u * u / (c.L + c.R)
	}
	return u, v
}

// radius is the capsule's radius at (u, v): the body is a little narrower
// than the cap that sleeves it, and a dent narrows one side or both.
func (c *capsule) radius(u, v float64) float64 {
	rh := c.R
	if u*c.flip > c.seam {
		rh *= 0.95
	}
	if c.dentD > 0 && (c.dentSide == 0 || (v > 0) == (c.dentSide > 0)) {
		t := (u - c.dentU) / c.dentW
		rh *= 1 - c.dentD*math.Exp(-t*t)
	}
	return rh
}

// sd is an approximate signed distance (pixels) to the capsule's outline.
func (c *capsule) sd(x, y float64) float64 {
	u, v := c.frame(x, y)
	return math.Hypot(math.Max(math.Abs(u)-c.L, 0), v) - c.radius(u, v)
}

// setBox sets the capsule's pixel box: its outline, bend and shadow, with
// a margin.
func (c *capsule) setBox(n int, k float64) {
	m := math.Abs(c.bend)*(c.L+c.R) + c.R + 10*k + 2
	hx, hy := c.L*math.Abs(c.ct)+m, c.L*math.Abs(c.st)+m
	c.x0 = max(0, int(math.Floor(c.c.x-hx)))
	c.y0 = max(0, int(math.Floor(c.c.y-hy)))
	c.x1 = min(n, int(math.Ceil(c.c.x+hx))+1)
	c.y1 = min(n, int(math.Ceil(c.c.y+hy))+1)
}

func (c *capsule) contains(x, y int) bool { return x >= c.x0 && x < c.x1 && y >= c.y0 && y < c.y1 }

// capsuleLook is what all capsules of an image share: light and shadow.
type capsuleLook struct {
	l, h   [3]float64 // unit light direction and half vector (viewer at +z)
	shadow pt         // shadow offset
	k      float64    // size / 256
	ns     uint64     // surface noise seed
}

// shade returns the capsule's colour and coverage at pixel centre (x, y).
func (c *capsule) shade(x, y float64, lk *capsuleLook) (rgb, float64) {
	u, v := c.frame(x, y)
	du := math.Max(math.Abs(u)-c.L, 0)
	rh := c.radius(u, v)
	d := math.Hypot(du, v)
	cov := clamp01(0.5 - (d - rh))
	if cov == 0 {
		return rgb{}, 0
	}
	rho := math.Min(1, d/rh)
	nz := math.Sqrt(1 - rho*rho)
	nu, nv := math.Copysign(du, u)/rh, v/rh
	nx, ny := nu*c.ct-nv*c.st, nu*c.st+nv*c.ct
	diff := math.Max(0, nx*lk.l[0]+ny*lk.l[1]+nz*lk.l[2])
	spec := math.Max(0, nx*lk.h[0]+ny*lk.h[1]+nz*lk.h[2])
	spec *= spec * spec * spec * spec // ^5
	spec *= spec                      // ^10
	spec *= spec                      // ^20
	spec *= spec                      // ^40
	w := u * c.flip
	base := c.bodCol
	if w < c.seam {
		base = c.capCol
	}
	k := 0.3 + 0.78*diff
	// the dark line where the cap's rim meets the body
	k *= 1 - 0.3*clamp01(1-math.Abs(w-c.seam)/(0.9*lk.k))
	if c.dentD > 0 && (c.dentSide == 0 || (v > 0) == (c.dentSide > 0)) {
		t := (u - c.dentU) / c.dentW
		k *= 1 - 0.9*c.dentD*math.Exp(-t*t)*math.Min(1, math.Abs(v)/rh+0.3)
	}
	k *= 1 + 0.02*vnoise(lk.ns, u/(3*lk.k), v/(3*lk.k))
	s := 130 * spec
	return base.scale(k).add(rgb{s, s, s}), cov
}

// paintCapsules renders the pixels of box (x0, y0)-(x1, y1) of dst: the
// tray (s.bg) in the capsules' shadows, and the capsules over it.
func paintCapsules(s *scene, dst *canvas, caps []capsule, lk *capsuleLook, x0, y0, x1, y1 int) {
	var near []*capsule
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			near = near[:0]
			for i := range caps {
				if caps[i].contains(x, y) {
					near = append(near, &caps[i])
				}
			}
			i := y*s.n + x
			col := rgb{float64(s.bg.pix[3*i]), float64(s.bg.pix[3*i+1]), float64(s.bg.pix[3*i+2])}
			fx, fy := float64(x)+0.5, float64(y)+0.5
			for _, c := range near {
				sh := c.sd(fx-lk.shadow.x, fy-lk.shadow.y)
				k := 1 - 0.45*(1-smoothstep(-2*lk.k, 5*lk.k, sh))
				if d := c.sd(fx, fy); d > 0 {
					k *= 1 - 0.25*math.Exp(-d/(1.5*lk.k))
				}
				col = col.scale(k)
			}
			for _, c := range near {
				if cc, cov := c.shade(fx, fy, lk); cov > 0 {
					col = lerpRGB(col, cc, cov)
				}
			}
			dst.pix[3*i], dst.pix[3*i+1], dst.pix[3*i+2] = float32(col[0]), float32(col[1]), float32(col[2])
		}
	}
}

// drawCapsules draws the capsules class: a dark, slightly mottled tray
// with up to capsuleCols×capsuleRows capsules on a loose grid. The grid is
// shifted and turned a little per image, each capsule is jittered in
// position, angle, size and colour and lies either way round, and one or
// two slots are sometimes empty.
func drawCapsules(s *scene, r *rand.Rand) {
	n := float64(s.n)
	k := s.s
	tray := jitterRGB(r, rgb{34, 36, 40}, 3)
	capCol := jitterRGB(r, rgb{196, 70, 46}, 6)
	bodyCol := jitterRGB(r, rgb{226, 212, 172}, 6)
	ns := r.Uint64()
	la := uniform(r, -0.35, 0.35) - 2.25 // light from the upper left
	lz := uniform(r, 0.7, 0.8)
	lxy := math.Sqrt(1 - lz*lz)
	lk := &capsuleLook{l: [3]float64{lxy * math.Cos(la), lxy * math.Sin(la), lz}, k: k, ns: ns + 2}
	hz := lk.l[2] + 1
	hn := math.Sqrt(lk.l[0]*lk.l[0] + lk.l[1]*lk.l[1] + hz*hz)
	lk.h = [3]float64{lk.l[0] / hn, lk.l[1] / hn, hz / hn}
	lk.shadow = pt{-lk.l[0] / lz * 4 * k, -lk.l[1] / lz * 4 * k}

	gth := uniform(r, -2.5, 2.5) * math.Pi / 180
	gc, gs := math.Cos(gth), math.Sin(gth)
	g0 := pt{n/2 + uniform(r, -0.02, 0.02)*n, n/2 + uniform(r, -0.02, 0.02)*n}
	cw, ch := 0.3*n, 0.225*n
	slots := capsuleCols * capsuleRows
	empty := map[int]bool{}
	if u := r.Float64(); u < 0.3 {
		empty[r.IntN(slots)] = true
		if u < 0.08 {
			empty[r.IntN(slots)] = true
		}
	}
	var caps []capsule
	for j := 0; j < slots; j++ {
		col, row := j%capsuleCols, j/capsuleCols
		gx := (float64(col) - float64(capsuleCols-1)/2) * cw
		gy := (float64(row) - float64(capsuleRows-1)/2) * ch
		gx += uniform(r, -3.5, 3.5) * k
		gy += uniform(r, -3, 3) * k
		th := gth + uniform(r, -9, 9)*math.Pi/180
		c := capsule{
			c:      pt{g0.x + gx*gc - gy*gs, g0.y + gx*gs + gy*gc},
			ct:     math.Cos(th),
			st:     math.Sin(th),
			L:      19.5 * k * uniform(r, 0.98, 1.02),
			R:      11.5 * k * uniform(r, 0.98, 1.02),
			flip:   float64(2*r.IntN(2) - 1),
			capCol: jitterRGB(r, capCol, 4),
			bodCol: jitterRGB(r, bodyCol, 4),
		}
		c.seam = c.L * uniform(r, 0.12, 0.2)
		if empty[j] {
			continue
		}
		c.setBox(s.n, k)
		caps = append(caps, c)
	}
	fill(s.bg, func(x, y float64) rgb {
		m := 1 + 0.12*fbm(ns, x/(28*k), y/(28*k), 3) + 0.04*vnoise(ns+1, x/(1.5*k), y/(1.5*k))
		return tray.scale(m)
	})
	paintCapsules(s, s.img, caps, lk, 0, 0, s.n, s.n)
	s.caps = caps
	s.capLook = lk
}

// capsuleSurface returns the surface weight of capsule c (1 from 1.5
// pixels at 256 px inside its outline), zero outside its box.
func capsuleSurface(s *scene, c *capsule) []float32 {
	w := make([]float32, s.n*s.n)
	for y := c.y0; y < c.y1; y++ {
		for x := c.x0; x < c.x1; x++ {
			d := c.sd(float64(x)+0.5, float64(y)+0.5)
			w[y*s.n+x] = float32(clamp01(-d/(2*s.s) - 0.5))
		}
	}
	return w
}

// onCapsule returns a random point on capsule c's face, away from its
// outline.
func onCapsule(r *rand.Rand, c *capsule) pt {
	u := uniform(r, -(c.L + 0.4*c.R), c.L+0.4*c.R)
	v := uniform(r, -0.55*c.R, 0.55*c.R)
	return pt{c.c.x + u*c.ct - v*c.st, c.c.y + u*c.st + v*c.ct}
}

// defectCapsules draws a defect on one capsule chosen at random.
func defectCapsules(s *scene, def *canvas, kind string, r *rand.Rand) {
	k := s.s
	i := r.IntN(len(s.caps))
	c := &s.caps[i]
	cv := newCover(s.n)
	switch kind {
	case "crack": // a dark jagged split in the shell, roughly along it
		p := onCapsule(r, c)
		ang := math.Atan2(c.st, c.ct) + uniform(r, -0.5, 0.5)
		st := k * uniform(r, 3, 5)
		a := walk(r, p, ang+math.Pi, st, 0.6, 3+r.IntN(5))
		path := walk(r, p, ang, st, 0.6, 3+r.IntN(5))
		slices.Reverse(a)
		path = append(a, path[1:]...)
		w := k * uniform(r, 1.3, 2.8)
		cv.stroke(path, w, nil)
		if r.IntN(3) > 0 { // a branch from part-way along
			b := path[1+r.IntN(len(path)-2)]
			cv.stroke(walk(r, b, ang+uniform(r, 0.5, 1.1)*float64(2*r.IntN(2)-1), k*uniform(r, 2, 3.5), 0.8, 2+r.IntN(4)), 0.7*w, nil)
		}
		cv.times(capsuleSurface(s, c), contrast(r, 0.25, 0.4, 0.55, 1))
		blend(def, cv, shift(rgb{0.4, 0.37, 0.35}, rgb{}))
	case "color": // a discoloured spot on the shell
		p := onCapsule(r, c)
		cv.blob(p, k*logu(r, 5.5, 13), uniform(r, 0.6, 1.6), r.Float64()*math.Pi, uniform(r, 0.2, 0.6), 0.3, r.Uint64())
		cv.times(capsuleSurface(s, c), contrast(r, 0.15, 0.3, 0.45, 0.9))
		tints := []rgb{{0.72, 0.58, 0.42}, {0.7, 0.76, 1}, {0.55, 0.55, 0.55}}
		blend(def, cv, shift(tints[r.IntN(len(tints))], rgb{}))
	case "contamination": // a foreign particle or fibre on the capsule
		p := onCapsule(r, c)
		if r.IntN(3) == 0 {
			path := walk(r, p, r.Float64()*2*math.Pi, k*uniform(r, 3, 4.5), 0.5, 4+r.IntN(4))
			cv.stroke(path, k*uniform(r, 1, 1.8), nil)
		} else {
			cv.blob(p, k*logu(r, 4, 8.5), uniform(r, 0.6, 1.6), r.Float64()*math.Pi, 0, 0.45, r.Uint64())
		}
		// it lies on the capsule and may hang over its edge a little
		w := make([]float32, s.n*s.n)
		for y := c.y0; y < c.y1; y++ {
			for x := c.x0; x < c.x1; x++ {
				d := c.sd(float64(x)+0.5, float64(y)+0.5)
				w[y*s.n+x] = float32(clamp01((4*k - d) / (2 * k)))
			}
		}
		cv.times(w, contrast(r, 0.3, 0.5, 0.75, 1))
		cols := []rgb{{40, 32, 26}, {92, 62, 36}, {70, 84, 112}, {20, 20, 22}}
		blend(def, cv, toward(cols[r.IntN(len(cols))]))
	case "squeeze": // the capsule is dented, pinched or bent
		d := *c
		switch r.IntN(3) {
		case 0, 1: // a dent on one side, or pinched from both
			d.dentSide = 2*r.IntN(2) - 1
			d.dentU = uniform(r, -0.8, 0.8) * c.L
			d.dentW = c.R * uniform(r, 0.35, 0.9)
			d.dentD = contrast(r, 0.12, 0.2, 0.22, 0.45)
			if r.IntN(3) == 0 {
				d.dentSide = 0
				d.dentD *= 0.6
			}
		default: // bent like a banana
			d.bend = float64(2*r.IntN(2)-1) * contrast(r, 0.04, 0.07, 0.08, 0.15)
		}
		d.setBox(s.n, k)
		caps := append([]capsule(nil), s.caps...)
		caps[i] = d
		paintCapsules(s, def, caps, s.capLook, min(c.x0, d.x0), min(c.y0, d.y0), max(c.x1, d.x1), max(c.y1, d.y1))
	}
}
