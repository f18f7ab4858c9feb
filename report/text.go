package report

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// num formats a value compactly: integers without decimals, else up to 3 significant decimals.
func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	a := math.Abs(v)
	switch {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// CellText is a cell as the table shows it: the value, then the change against the baseline.
func CellText(c Cell, unit string, baseline bool) string {
	if !c.OK {
		return "-"
	}
	s := num(c.Value)
	if unit == "%" {
		s += " %"
	}
	if baseline || !c.HasDelta {
		return s
	}
	d := num(c.Delta)
	if c.Delta > 0 {
		d = "+" + d
	}
	if !math.IsNaN(c.DeltaPct) {
		d += fmt.Sprintf(", %+.1f%%", c.DeltaPct)
	}
	mark := ""
	switch {
	case c.Improved:
		mark = " better"
	case c.Worse:
		mark = " worse"
	}
	return s + " (" + d + mark + ")"
}

// WriteText writes the comparison as an aligned terminal table.
func WriteText(w io.Writer, c *Comparison) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	head := []string{"metric", "unit"}
	for i, r := range c.Runs {
		name := r.Name
		if i == 0 {
			name += " (baseline)"
		}
		head = append(head, name)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, l := range c.Lines {
		cols := []string{l.Metric.Name, l.Metric.Unit}
		for i, cell := range l.Cells {
			cols = append(cols, CellText(cell, l.Metric.Unit, i == 0))
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for i, n := range c.Notes {
		if n != "" {
			if _, err := fmt.Fprintf(w, "%s: %s\n", c.Runs[i].Name, n); err != nil {
				return err
			}
		}
	}
	return nil
}
