package report

import (
	"fmt"
	"html/template"
	"io"
	"sort"
)

// Curves are the overlaid charts of a comparison, one line per run in each.
func Curves(runs []*Report) []template.HTML {
	var thr, lat, ttft, tok, str []Line2D
	for _, r := range runs {
		if r.Capacity != nil {
			steps := measured(r.Capacity.Steps)
			sort.Slice(steps, func(i, j int) bool { return steps[i].Users < steps[j].Users })
			t := Line2D{Name: r.Name}
			for _, s := range steps {
				if v, ok := ptr(s.StreamsPerS); ok {
					t.Points = append(t.Points, XY{float64(s.Users), v})
				}
			}
			thr = append(thr, t)
			l := Line2D{Name: r.Name}
			for _, s := range steps {
				x, okx := ptr(s.StreamsPerS)
				y, oky := ptr(s.LatencyMS["ttft"]["p95"])
				if okx && oky {
					l.Points = append(l.Points, XY{x, y})
				}
			}
			lat = append(lat, l)
		}
		t0 := 0.0
		if len(r.Series.Points) > 0 {
			t0 = r.Series.Points[0].T
		}
		a, b, c := Line2D{Name: r.Name}, Line2D{Name: r.Name}, Line2D{Name: r.Name}
		for _, p := range r.Series.Points {
			if v, ok := ptr(p.TTFT["p95"]); ok {
				a.Points = append(a.Points, XY{p.T - t0, v})
			}
			if v, ok := ptr(p.TokensPerS); ok {
				b.Points = append(b.Points, XY{p.T - t0, v})
			}
			if v, ok := ptr(p.StreamsPerS); ok {
				c.Points = append(c.Points, XY{p.T - t0, v})
			}
		}
		ttft, tok, str = append(ttft, a), append(tok, b), append(str, c)
	}
	var out []template.HTML
	if len(thr) > 0 {
		out = append(out,
			template.HTML(SVGChart("Capacity: streams/s vs users", "users", "streams/s", thr)),
			template.HTML(SVGChart("Capacity: TTFT p95 vs streams/s", "streams/s", "ms", lat)))
	}
	out = append(out,
		template.HTML(SVGChart("TTFT p95 over the run", "seconds since start", "ms", ttft)),
		template.HTML(SVGChart("Output tokens/s over the run", "seconds since start", "tokens/s", tok)),
		template.HTML(SVGChart("Streams/s over the run", "seconds since start", "streams/s", str)))
	return out
}

func measured(steps []Step) []Step {
	out := make([]Step, 0, len(steps))
	for _, s := range steps {
		if s.Verdict == "ok" || s.Verdict == "bad" {
			out = append(out, s)
		}
	}
	return out
}

// pageHTML is the comparison page's html/template text.
const pageHTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>difyload run comparison</title>
<style>
body{font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;margin:16px}
table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f0f0f0}td:first-child{text-align:left}.better{color:#0a7a0a}.worse{color:#b00}
.charts{display:flex;flex-wrap:wrap;gap:8px}.charts svg{border:1px solid #eee}
</style></head><body>
<h1>difyload run comparison</h1>
<p>Baseline: <b>{{(index .Runs 0).Name}}</b>. Each other run shows its value, then its change against the baseline.</p>
<table id="compare"><thead><tr><th>Metric</th><th>Unit</th>{{range .Runs}}<th>{{.Name}}</th>{{end}}</tr></thead><tbody>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.Unit}}</td>{{range .Cells}}<td class="{{.Class}}">{{.Text}}</td>{{end}}</tr>
{{end}}</tbody></table>
{{range $i, $n := .Notes}}{{if $n}}<p><b>{{(index $.Runs $i).Name}}</b>: {{$n}}</p>{{end}}{{end}}
<h2>Curves</h2><div class="charts">{{range .Charts}}{{.}}{{end}}</div>
</body></html>
`

type htmlCell struct{ Text, Class string }
type htmlRow struct {
	Name, Unit string
	Cells      []htmlCell
}

// WriteHTML writes the comparison as one self-contained page with the overlaid curves.
func WriteHTML(w io.Writer, c *Comparison) error {
	rows := make([]htmlRow, 0, len(c.Lines))
	for _, l := range c.Lines {
		r := htmlRow{Name: l.Metric.Name, Unit: l.Metric.Unit}
		for i, cell := range l.Cells {
			cls := ""
			switch {
			case cell.Improved:
				cls = "better"
			case cell.Worse:
				cls = "worse"
			}
			r.Cells = append(r.Cells, htmlCell{CellText(cell, l.Metric.Unit, i == 0), cls})
		}
		rows = append(rows, r)
	}
	page, err := template.New("compare").Parse(pageHTML)
	if err != nil {
		return fmt.Errorf("report: page template: %w", err)
	}
	return page.Execute(w, map[string]any{"Runs": c.Runs, "Rows": rows, "Notes": c.Notes, "Charts": Curves(c.Runs)})
}
