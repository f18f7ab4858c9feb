package report

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// XY is one point of a chart line.
type XY struct{ X, Y float64 }

// Line2D is one named line of a chart.
type Line2D struct {
	Name   string
	Points []XY
}

// palette returns the line colours, used in turn.
func palette() [6]string {
	return [...]string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"}
}

// SVGChart draws lines on shared axes as an inline SVG element (no script, no network).
func SVGChart(title, xLabel, yLabel string, lines []Line2D) string {
	const W, H, L, R, T, B = 560.0, 260.0, 56.0, 12.0, 30.0, 36.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="dl-chart" xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" data-title="%s">`,
		W, H, W, H, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%g" y="16" font-size="13" font-weight="bold">%s</text>`, L, html.EscapeString(title))
	x0, x1, y1 := math.Inf(1), math.Inf(-1), 0.0
	n := 0
	for _, l := range lines {
		for _, p := range l.Points {
			x0, x1, y1 = math.Min(x0, p.X), math.Max(x1, p.X), math.Max(y1, p.Y)
			n++
		}
	}
	if n == 0 {
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle" fill="#888">no data</text></svg>`, W/2, H/2)
		return b.String()
	}
	if x1 == x0 {
		x1 = x0 + 1
	}
	if y1 <= 0 {
		y1 = 1
	}
	y1 *= 1.08
	X := func(v float64) float64 { return L + (v-x0)/(x1-x0)*(W-L-R) }
	Y := func(v float64) float64 { return H - B - v/y1*(H-T-B) }
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#666"/><line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#666"/>`,
		L, H-B, W-R, H-B, L, T, L, H-B)
	for i := 0; i <= 4; i++ {
		yv, xv := y1*float64(i)/4, x0+(x1-x0)*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#ddd"/>`, L, Y(yv), W-R, Y(yv))
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end" font-size="10">%s</text>`, L-4, Y(yv)+4, num(round3(yv)))
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle" font-size="10">%s</text>`, X(xv), H-B+14, num(round3(xv)))
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle" font-size="11">%s</text>`, (L+W-R)/2, H-4, html.EscapeString(xLabel))
	fmt.Fprintf(&b, `<text x="12" y="%g" font-size="11" text-anchor="middle" transform="rotate(-90 12 %g)">%s</text>`,
		(T+H-B)/2, (T+H-B)/2, html.EscapeString(yLabel))
	colours := palette()
	for i, l := range lines {
		c := colours[i%len(colours)]
		pts := make([]string, 0, len(l.Points))
		for _, p := range l.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", X(p.X), Y(p.Y)))
		}
		fmt.Fprintf(&b, `<polyline class="dl-line" points="%s" fill="none" stroke="%s" stroke-width="2" data-series="%s"/>`,
			strings.Join(pts, " "), c, html.EscapeString(l.Name))
		for _, p := range l.Points {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>`, X(p.X), Y(p.Y), c)
		}
		fmt.Fprintf(&b, `<rect x="%g" y="%g" width="10" height="3" fill="%s"/><text x="%g" y="%g" font-size="10">%s</text>`,
			L+8+float64(i)*140, T-4, c, L+22+float64(i)*140, T, html.EscapeString(l.Name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
