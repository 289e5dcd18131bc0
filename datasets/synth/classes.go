package synth

import (
	"math"
	"math/rand/v2"
)

// scene is one rendered normal image plus what the defects need to know
// about it.
type scene struct {
	class   string
	n       int
	s       float64 // size / 256: lengths below are given at 256 px
	img     *canvas // the normal image (before lighting and sensor noise)
	bg      *canvas // what lies behind: background for objects, backing for textures
	support []float32
	// surface is where surface defects may sit (object face, or all of a texture).
	surface []float32
	ctr     pt
	corners []pt // object outline points where a piece may break off
	angle   float64
	rim     func(ang float64) pt // object outline point at a polar angle (objects)
	caps    []capsule            // the instances (capsules)
	capLook *capsuleLook         // light and shadow shared by the instances (capsules)
}

// pick returns a random pixel centre where the surface weight is full,
// at least margin pixels from the border.
func (s *scene) pick(r *rand.Rand, margin float64) pt {
	n := float64(s.n)
	var p pt
	for try := 0; try < 500; try++ {
		p = pt{uniform(r, margin, n-margin), uniform(r, margin, n-margin)}
		x, y := int(p.x), int(p.y)
		if s.surface == nil || s.surface[y*s.n+x] > 0.999 {
			return p
		}
	}
	return p
}

type classDef struct {
	name    string
	kind    string // "texture", "object" or "multi" (several objects)
	optIn   bool   // written only when Config.Classes names it
	about   string
	defects []string
	draw    func(s *scene, r *rand.Rand)
	defect  func(s *scene, def *canvas, kind string, r *rand.Rand)
}

var classDefs = []classDef{
	{name: "fabric", kind: "texture", about: "denim-like 2/2 twill weave with orientation, phase and period jitter",
		defects: []string{"hole", "stain", "thread"}, draw: drawFabric, defect: defectTexture},
	{name: "wood", kind: "texture", about: "wood grain with growth rings warped by noise and fine fibre streaks",
		defects: []string{"color", "crack", "hole", "scratch"}, draw: drawWood, defect: defectTexture},
	{name: "pill", kind: "object", about: "oval white pill with red speckles, a score line and an FF imprint, on a dark background",
		defects: []string{"chip", "color", "contamination", "crack"}, draw: drawPill, defect: defectObject},
	{name: "nut", kind: "object", about: "hex nut with a threaded bore, chamfer and brushed metal, on a light background with a shadow",
		defects: []string{"chip", "color", "scratch"}, draw: drawNut, defect: defectObject},
	// Classes added later are opt-in, so that the default set, and every
	// result computed on it, stays as it was.
	{name: "capsules", kind: "multi", optIn: true, about: "VisA-like tray of two-tone capsules on a loose grid, jittered in position, angle and count",
		defects: []string{"color", "contamination", "crack", "squeeze"}, draw: drawCapsules, defect: defectCapsules},
}

func fill(c *canvas, f func(x, y float64) rgb) {
	n := c.n
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			v := f(float64(x)+0.5, float64(y)+0.5)
			i := 3 * (y*n + x)
			c.pix[i], c.pix[i+1], c.pix[i+2] = float32(v[0]), float32(v[1]), float32(v[2])
		}
	}
}

func ones(n int) []float32 {
	w := make([]float32, n*n)
	for i := range w {
		w[i] = 1
	}
	return w
}

func drawFabric(s *scene, r *rand.Rand) {
	th := uniform(r, -4, 4) * math.Pi / 180
	ct, st := math.Cos(th), math.Sin(th)
	p := 7 * s.s * uniform(r, 0.95, 1.05)
	u0, v0 := uniform(r, 0, 4), uniform(r, 0, 4)
	warp := jitterRGB(r, rgb{62, 84, 128}, 6)
	weft := jitterRGB(r, rgb{150, 155, 165}, 6)
	ns := r.Uint64()
	sc := 40 * s.s
	fill(s.img, func(x, y float64) rgb {
		u := (x*ct+y*st)/p + u0
		v := (-x*st+y*ct)/p + v0
		fi, fj := math.Floor(u), math.Floor(v)
		fu, fv := u-fi, v-fj
		k := (int64(fi) - int64(fj)) % 4
		if k < 0 {
			k += 4
		}
		var col rgb
		var shade float64
		if k < 2 { // warp (runs along v) on top
			shade = 0.55 + 0.45*math.Sqrt(math.Sin(math.Pi*fu))*(0.85+0.15*math.Sin(math.Pi*fv))
			col = warp.scale(1 + 0.08*vnoise(ns, u*1.3, v*5))
		} else {
			shade = 0.55 + 0.45*math.Sqrt(math.Sin(math.Pi*fv))*(0.85+0.15*math.Sin(math.Pi*fu))
			col = weft.scale(1 + 0.08*vnoise(ns+1, u*5, v*1.3))
		}
		m := 1 + 0.06*fbm(ns+2, x/sc, y/sc, 3)
		return col.scale(shade * m)
	})
	fill(s.bg, func(x, y float64) rgb { return rgb{22, 24, 30} })
}

func drawWood(s *scene, r *rand.Rand) {
	th := uniform(r, -6, 6) * math.Pi / 180
	ct, st := math.Cos(th), math.Sin(th)
	pr := s.s * uniform(r, 10, 14)
	ph := r.Float64()
	light := jitterRGB(r, rgb{208, 164, 114}, 8)
	dark := jitterRGB(r, rgb{146, 98, 58}, 8)
	ns := r.Uint64()
	amp := 12 * s.s
	fill(s.img, func(x, y float64) rgb {
		u := x*ct + y*st
		v := -x*st + y*ct
		w := v + amp*fbm(ns, u/(90*s.s), v/(30*s.s), 3)
		ring := w/pr + ph + 0.3*fbm(ns+1, u/(200*s.s), v/(60*s.s), 2)
		ring -= math.Floor(ring)
		t := ring * ring * ring
		fine := vnoise(ns+2, u/(25*s.s), v/(0.9*s.s))
		c := lerpRGB(light, dark, clamp01(0.6*t+0.08*fine+0.1))
		return c.scale(1 + 0.04*fbm(ns+3, x/(50*s.s), y/(50*s.s), 2))
	})
	fill(s.bg, func(x, y float64) rgb { return rgb{40, 26, 16} })
}

// ellipseSD is an approximate signed distance (pixels) to an ellipse with
// half-axes a, b in its own frame.
func ellipseSD(u, v, a, b float64) float64 {
	rho := math.Hypot(u/a, v/b)
	return (rho - 1) * math.Min(a, b)
}

func drawPill(s *scene, r *rand.Rand) {
	n := float64(s.n)
	c := pt{n/2 + uniform(r, -0.03, 0.03)*n, n/2 + uniform(r, -0.03, 0.03)*n}
	th := uniform(r, -12, 12) * math.Pi / 180
	ct, st := math.Cos(th), math.Sin(th)
	a, b := 0.38*n*uniform(r, 0.98, 1.02), 0.27*n*uniform(r, 0.98, 1.02)
	body := jitterRGB(r, rgb{232, 226, 212}, 5)
	back := jitterRGB(r, rgb{26, 30, 28}, 3)
	ns := r.Uint64()
	// local frame: u along the long axis
	local := func(x, y float64) (float64, float64) {
		dx, dy := x-c.x, y-c.y
		return dx*ct + dy*st, -dx*st + dy*ct
	}
	world := func(u, v float64) pt { return pt{c.x + u*ct - v*st, c.y + u*st + v*ct} }
	fill(s.bg, func(x, y float64) rgb {
		return back.scale(1 + 0.15*fbm(ns, x/(30*s.s), y/(30*s.s), 2))
	})
	s.support = make([]float32, s.n*s.n)
	s.surface = make([]float32, s.n*s.n)
	fill(s.img, func(x, y float64) rgb {
		u, v := local(x, y)
		sd := ellipseSD(u, v, a, b)
		cov := clamp01(0.5 - sd)
		i := int(y)*s.n + int(x)
		s.support[i] = float32(cov)
		s.surface[i] = float32(clamp01(-sd/(3*s.s) - 0.5))
		bgc := rgb{float64(s.bg.pix[3*i]), float64(s.bg.pix[3*i+1]), float64(s.bg.pix[3*i+2])}
		if cov == 0 {
			// soft contact shadow around the pill
			return bgc.scale(1 - 0.4*math.Exp(-sd/(4*s.s)))
		}
		rho := math.Min(1, math.Hypot(u/a, v/b))
		dome := 0.78 + 0.22*math.Sqrt(1-rho*rho)
		hl := 0.05 * math.Exp(-((u+0.3*a)*(u+0.3*a)+(v+0.3*b)*(v+0.3*b))/(0.1*a*a))
		col := body.scale(dome + hl + 0.02*fbm(ns+1, u/(6*s.s), v/(6*s.s), 2))
		return lerpRGB(bgc, col, cov)
	})
	// speckles, score line and imprint, in the pill's frame
	ink := newCover(s.n)
	for k, cnt := 0, 25+r.IntN(35); k < cnt; k++ {
		var u, v float64
		for {
			u, v = uniform(r, -a, a), uniform(r, -b, b)
			if math.Hypot(u/a, v/b) < 0.88 {
				break
			}
		}
		rad := s.s * uniform(r, 0.5, 1.5)
		p := world(u, v)
		k := uniform(r, 0.45, 0.9)
		ink.paint(p.x-rad-2, p.y-rad-2, p.x+rad+2, p.y+rad+2, func(x, y float64) float64 {
			return k * clamp01(rad+0.5-math.Hypot(x-p.x, y-p.y))
		})
	}
	blend(s.img, ink, func(_ int, cur rgb) rgb { return rgb{176, 62, 52}.scale(cur[0] / 232) })
	groove := newCover(s.n)
	groove.stroke([]pt{world(-0.42*a, -0.8*b), world(-0.42*a, 0.8*b)}, 1.6*s.s, nil)
	blend(s.img, groove, func(_ int, cur rgb) rgb { return cur.scale(0.72) })
	// "FF": two F glyphs in red ink on the right half
	imp := newCover(s.n)
	h, w := 0.34*b, 0.18*b
	for g, u0 := range []float64{0.05 * a, 0.05*a + 1.6*w} {
		_ = g
		imp.stroke([]pt{world(u0, -h), world(u0, h)}, 2.2*s.s, nil)
		imp.stroke([]pt{world(u0, -h), world(u0+w, -h)}, 2.2*s.s, nil)
		imp.stroke([]pt{world(u0, 0), world(u0+0.8*w, 0)}, 2.2*s.s, nil)
	}
	imp.times(nil, 0.85)
	blend(s.img, imp, func(_ int, cur rgb) rgb { return rgb{150, 52, 48}.scale(cur[0] / 232) })
	s.ctr = c
	s.angle = th
	s.rim = func(ang float64) pt { return world(a*math.Cos(ang), b*math.Sin(ang)) }
}

// newHex returns the signed distance to a regular hexagon with apothem ap,
// rotated by th (pointy corners at th + k·60°).
func newHex(ap, th float64) func(x, y float64) float64 {
	var nx, ny [6]float64
	for k := range nx {
		a := th + math.Pi/6 + float64(k)*math.Pi/3
		nx[k], ny[k] = math.Cos(a), math.Sin(a)
	}
	return func(x, y float64) float64 {
		d := -math.MaxFloat64
		for k := range nx {
			d = math.Max(d, x*nx[k]+y*ny[k]-ap)
		}
		return d
	}
}

func drawNut(s *scene, r *rand.Rand) {
	n := float64(s.n)
	c := pt{n/2 + uniform(r, -0.03, 0.03)*n, n/2 + uniform(r, -0.03, 0.03)*n}
	th := r.Float64() * math.Pi / 3
	R := 0.36 * n * uniform(r, 0.98, 1.02)
	ap := R * math.Cos(math.Pi/6)
	ri := 0.17 * n
	rb := 0.8 * ri // through-hole radius
	rc := 0.93 * R // chamfer circle
	metal := jitterRGB(r, rgb{150, 153, 160}, 6)
	back := jitterRGB(r, rgb{188, 188, 182}, 5)
	phi0 := r.Float64() * 2 * math.Pi
	ns := r.Uint64()
	sh := pt{4 * s.s, 5 * s.s}
	hex := newHex(ap, th)
	fill(s.bg, func(x, y float64) rgb {
		b := back.scale(1 + 0.04*fbm(ns, x/(60*s.s), y/(60*s.s), 2))
		sd := hex(x-c.x-sh.x, y-c.y-sh.y)
		return b.scale(1 - 0.35*(1-smoothstep(-6*s.s, 6*s.s, sd)))
	})
	s.support = make([]float32, s.n*s.n)
	s.surface = make([]float32, s.n*s.n)
	fill(s.img, func(x, y float64) rgb {
		dx, dy := x-c.x, y-c.y
		i := int(y)*s.n + int(x)
		bgc := rgb{float64(s.bg.pix[3*i]), float64(s.bg.pix[3*i+1]), float64(s.bg.pix[3*i+2])}
		sd := hex(dx, dy)
		rho := math.Hypot(dx, dy)
		hole := clamp01(0.5 - (rho - rb)) // inside the through-hole
		cov := clamp01(0.5-sd) * (1 - hole)
		s.support[i] = float32(cov)
		face := clamp01(-sd/(2*s.s)) * clamp01((rho-ri)/(2*s.s)-0.5) * clamp01((rc-rho)/(2*s.s))
		s.surface[i] = float32(face)
		if cov == 0 {
			return bgc.scale(0.75) // seen through the bore: in its shadow
		}
		phi := math.Atan2(dy, dx)
		var col rgb
		switch {
		case rho < ri: // threads
			t := rho/(3*s.s) + phi/(2*math.Pi)
			t -= math.Floor(t)
			col = metal.scale(0.45 + 0.35*math.Abs(2*t-1))
		case rho > rc: // chamfer
			col = metal.scale(0.72 + 0.1*math.Cos(phi-phi0))
		default: // brushed face with an anisotropic highlight
			br := 0.08 * vnoise(ns+1, phi*40, rho/(0.7*s.s))
			col = metal.scale(0.92 + 0.12*math.Cos(2*(phi-phi0)) + br)
		}
		return lerpRGB(bgc.scale(0.75*hole+(1-hole)), col, cov)
	})
	s.ctr = c
	s.angle = th
	for k := 0; k < 6; k++ {
		a := th + float64(k)*math.Pi/3
		s.corners = append(s.corners, pt{c.x + R*math.Cos(a), c.y + R*math.Sin(a)})
	}
}

// contrast draws a defect's strength: about a third are subtle.
func contrast(r *rand.Rand, subtleLo, subtleHi, lo, hi float64) float64 {
	if r.Float64() < 0.35 {
		return uniform(r, subtleLo, subtleHi)
	}
	return uniform(r, lo, hi)
}

func shift(k rgb, add rgb) func(int, rgb) rgb {
	return func(_ int, cur rgb) rgb { return cur.mul(k).add(add) }
}

func toward(c rgb) func(int, rgb) rgb { return func(int, rgb) rgb { return c } }

// fromBg returns the background pixel (for holes and missing pieces).
func fromBg(s *scene) func(int, rgb) rgb {
	return func(i int, _ rgb) rgb {
		p := s.bg.pix[3*i : 3*i+3]
		return rgb{float64(p[0]), float64(p[1]), float64(p[2])}
	}
}

func defectTexture(s *scene, def *canvas, kind string, r *rand.Rand) {
	k := s.s
	c := newCover(s.n)
	switch kind {
	case "hole":
		if s.class == "wood" {
			woodHole(s, def, r)
			return
		}
		// fabric: a frayed hole showing the dark backing
		p := s.pick(r, 20*k)
		c.blob(p, k*logu(r, 3, 24), uniform(r, 0.7, 1.4), r.Float64()*math.Pi, 0, 0.35, r.Uint64())
		blend(def, c, fromBg(s))
		// frayed, darkened rim
		rim := newCover(s.n)
		rim.blob(p, 1.25*c.maxRad, 1, 0, 0.5, 0.4, r.Uint64())
		rim.times(nil, 0.35)
		blend(def, rim, shift(rgb{0.7, 0.7, 0.7}, rgb{}))
	case "stain": // fabric: a soft stain, often faint
		p := s.pick(r, 10*k)
		c.blob(p, k*logu(r, 6, 45), uniform(r, 0.6, 1.6), r.Float64()*math.Pi, uniform(r, 0.3, 0.8), 0.3, r.Uint64())
		c.times(nil, contrast(r, 0.05, 0.15, 0.2, 0.6))
		if r.IntN(2) == 0 {
			blend(def, c, shift(rgb{0.8, 0.62, 0.42}, rgb{}))
		} else {
			blend(def, c, shift(rgb{0.5, 0.5, 0.5}, rgb{}))
		}
	case "thread": // fabric: a loose thread lying on the weave
		p := s.pick(r, 10*k)
		path := walk(r, p, r.Float64()*2*math.Pi, k*uniform(r, 4, 9), 0.5, 4+r.IntN(10))
		c.stroke(path, k*uniform(r, 0.8, 2.8), nil)
		c.times(nil, contrast(r, 0.15, 0.3, 0.5, 1))
		blend(def, c, toward(jitterRGB(r, []rgb{{210, 200, 170}, {40, 40, 45}, {160, 40, 40}}[r.IntN(3)], 10)))
	case "scratch": // wood: a thin light line, often low contrast
		p := s.pick(r, 10*k)
		path := walk(r, p, r.Float64()*2*math.Pi, k*uniform(r, 8, 30), 0.12, 2+r.IntN(4))
		c.stroke(path, k*uniform(r, 0.6, 1.6), nil)
		c.times(nil, contrast(r, 0.08, 0.2, 0.35, 0.9))
		blend(def, c, shift(rgb{1.12, 1.12, 1.12}, rgb{28, 26, 24}))
	case "crack": // wood: a dark jagged split roughly along the grain
		p := s.pick(r, 10*k)
		steps := 5 + r.IntN(25)
		path := walk(r, p, uniform(r, -0.3, 0.3)+math.Pi*float64(r.IntN(2)), k*uniform(r, 3, 6), 0.7, steps)
		ws := make([]float64, len(path))
		wmax := k * logu(r, 1, 4.5)
		for i := range ws {
			t := float64(i) / float64(len(ws)-1)
			ws[i] = wmax * (0.3 + 0.7*math.Sin(math.Pi*t))
		}
		c.stroke(path, 0, ws)
		c.times(nil, uniform(r, 0.5, 1))
		blend(def, c, toward(rgb{45, 28, 16}))
	case "color": // wood: a discoloured patch
		p := s.pick(r, 10*k)
		c.blob(p, k*logu(r, 8, 45), uniform(r, 0.5, 2), r.Float64()*math.Pi, uniform(r, 0.2, 0.7), 0.3, r.Uint64())
		c.times(nil, contrast(r, 0.08, 0.2, 0.3, 0.7))
		tints := []rgb{{0.75, 0.8, 0.85}, {0.6, 0.5, 0.45}, {1.05, 0.95, 0.7}}
		blend(def, c, shift(tints[r.IntN(len(tints))], rgb{}))
	}
}

// woodHole is a small dark hole with a darkened rim.
func woodHole(s *scene, def *canvas, r *rand.Rand) {
	k := s.s
	c := newCover(s.n)
	p := s.pick(r, 10*k)
	rad := k * logu(r, 2, 10)
	rim := newCover(s.n)
	rim.blob(p, 1.7*rad, 1, 0, 0.6, 0.2, r.Uint64())
	rim.times(nil, 0.35)
	blend(def, rim, shift(rgb{0.7, 0.65, 0.6}, rgb{}))
	c.blob(p, rad, uniform(r, 0.8, 1.25), r.Float64()*math.Pi, 0, 0.2, r.Uint64())
	blend(def, c, fromBg(s))
}

func defectObject(s *scene, def *canvas, kind string, r *rand.Rand) {
	k := s.s
	c := newCover(s.n)
	switch kind {
	case "crack": // pill: dark jagged line across the surface
		p := s.pick(r, 10*k)
		path := walk(r, p, r.Float64()*2*math.Pi, k*uniform(r, 3, 6), 0.8, 4+r.IntN(14))
		c.stroke(path, k*uniform(r, 0.7, 2), nil)
		c.times(s.surface, contrast(r, 0.2, 0.35, 0.5, 1))
		blend(def, c, shift(rgb{0.35, 0.33, 0.32}, rgb{}))
	case "contamination": // pill: a small foreign particle
		p := s.pick(r, 10*k)
		c.blob(p, k*logu(r, 2, 12), uniform(r, 0.6, 1.6), r.Float64()*math.Pi, 0, 0.45, r.Uint64())
		c.times(s.surface, contrast(r, 0.15, 0.3, 0.6, 1))
		cols := []rgb{{60, 45, 30}, {20, 20, 22}, {70, 90, 140}, {120, 110, 60}}
		blend(def, c, toward(cols[r.IntN(len(cols))]))
	case "color": // pill or nut: a tinted or painted patch
		p := s.pick(r, 10*k)
		var tint rgb
		if s.corners == nil {
			c.blob(p, k*logu(r, 8, 40), uniform(r, 0.6, 1.6), r.Float64()*math.Pi, uniform(r, 0.3, 0.8), 0.3, r.Uint64())
			c.times(s.surface, contrast(r, 0.1, 0.25, 0.3, 0.6))
			tint = []rgb{{1, 0.8, 0.8}, {1, 0.95, 0.65}, {0.8, 0.85, 1}}[r.IntN(3)]
			blend(def, c, shift(tint, rgb{}))
		} else {
			c.blob(p, k*logu(r, 4, 24), uniform(r, 0.6, 1.6), r.Float64()*math.Pi, uniform(r, 0, 0.5), 0.4, r.Uint64())
			c.times(s.surface, contrast(r, 0.12, 0.3, 0.5, 0.9))
			cols := []rgb{{180, 40, 36}, {40, 70, 170}, {140, 72, 30}}
			blend(def, c, toward(cols[r.IntN(len(cols))]))
		}
	case "scratch": // nut: a thin bright or dark line on the face
		p := s.pick(r, 10*k)
		path := walk(r, p, r.Float64()*2*math.Pi, k*uniform(r, 8, 25), 0.15, 2+r.IntN(3))
		c.stroke(path, k*uniform(r, 0.6, 1.5), nil)
		c.times(s.surface, contrast(r, 0.1, 0.25, 0.4, 0.9))
		if r.IntN(2) == 0 {
			blend(def, c, shift(rgb{1.2, 1.2, 1.2}, rgb{30, 30, 30}))
		} else {
			blend(def, c, shift(rgb{0.55, 0.55, 0.55}, rgb{}))
		}
	case "chip": // a piece broken off the outline: the background shows
		var p pt
		if s.corners != nil {
			q := s.corners[r.IntN(len(s.corners))]
			t := uniform(r, 0, 0.12)
			p = pt{q.x + (s.ctr.x-q.x)*t, q.y + (s.ctr.y-q.y)*t}
		} else {
			q := s.rim(r.Float64() * 2 * math.Pi)
			t := uniform(r, -0.05, 0.05)
			p = pt{q.x + (s.ctr.x-q.x)*t, q.y + (s.ctr.y-q.y)*t}
		}
		c.blob(p, k*logu(r, 6, 32), uniform(r, 0.7, 1.4), r.Float64()*math.Pi, 0, 0.3, r.Uint64())
		c.times(s.support, 1)
		// the fracture face: darken the support just around the missing part
		edge := newCover(s.n)
		edge.paint(float64(c.x0)-3*k, float64(c.y0)-3*k, float64(c.x1)+3*k, float64(c.y1)+3*k, func(x, y float64) float64 { return 1 })
		for y := edge.y0; y < edge.y1; y++ {
			for x := edge.x0; x < edge.x1; x++ {
				i := y*s.n + x
				near := float32(0)
				for dy := -2; dy <= 2; dy++ {
					for dx := -2; dx <= 2; dx++ {
						xx, yy := x+dx, y+dy
						if xx >= 0 && yy >= 0 && xx < s.n && yy < s.n && c.a[yy*s.n+xx] > near {
							near = c.a[yy*s.n+xx]
						}
					}
				}
				edge.a[i] = 0.4 * near * s.support[i]
			}
		}
		blend(def, edge, shift(rgb{0.6, 0.6, 0.6}, rgb{}))
		blend(def, c, fromBg(s))
	}
}
