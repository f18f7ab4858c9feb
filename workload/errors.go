package workload

import (
	"errors"
	"fmt"
	"strings"
)

// Error is one problem in a workload: where it is and how to fix it. It never holds a key.
type Error struct {
	File    string // the workload file (or "master message")
	Place   string // a key path, e.g. apps[2].type; "" for the whole file
	Line    int    // for syntax errors, when the parser knows it
	Problem string
	Fix     string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("workload ")
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Place != "" {
		b.WriteString(": ")
		b.WriteString(e.Place)
	}
	b.WriteString(": ")
	b.WriteString(e.Problem)
	if e.Fix != "" {
		b.WriteString(" (fix: ")
		b.WriteString(e.Fix)
		b.WriteString(")")
	}
	return b.String()
}

// Errors returns every *Error inside err (a joined error or a single one).
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		// *Error has no Unwrap() []error, so a joined error is never one itself.
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var we *Error
		if errors.As(e, &we) {
			out = append(out, we)
		}
	}
	walk(err)
	return out
}

// maxErrors bounds how many problems one check reports.
const maxErrors = 20

type problems struct {
	file string
	errs []error
}

func (p *problems) add(place, problem, fix string) {
	if len(p.errs) < maxErrors {
		p.errs = append(p.errs, &Error{File: p.file, Place: place, Problem: problem, Fix: fix})
	}
}

func (p *problems) err() error { return errors.Join(p.errs...) }

// closest returns the allowed name nearest to s (edit distance ≤ 3), or "".
func closest(s string, allowed []string) string {
	best, bestD := "", 4
	for _, a := range allowed {
		if d := editDistance(s, a); d < bestD {
			best, bestD = a, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
