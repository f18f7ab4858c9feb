package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReportCompare(t *testing.T) {
	a, b := filepath.Join("..", "..", "report", "testdata", "small-capacity.json"), filepath.Join("..", "..", "report", "testdata", "large-capacity.json")
	out := filepath.Join(t.TempDir(), "cmp.html")
	tests := []struct {
		name    string
		args    []string
		usage   bool
		errText string
		stdout  []string
	}{
		{name: "table and html", args: []string{"report", "compare", "--html", out, "--names", "8 jobs,16 jobs", a, b},
			stdout: []string{"8 jobs (baseline)", "16 jobs", "capacity: peak streams/s", "+100.0% better", "comparison written to"}},
		{name: "one file", args: []string{"report", "compare", a}, usage: true},
		{name: "no subcommand", args: []string{"report"}, usage: true},
		{name: "unknown subcommand", args: []string{"report", "merge", a, b}, usage: true},
		{name: "not a report", args: []string{"report", "compare", a, filepath.Join("..", "..", "go.mod")}, errText: "go.mod"},
		{name: "missing file", args: []string{"report", "compare", a, "nope.json"}, errText: "nope.json"},
		{name: "names count", args: []string{"report", "compare", "--names", "x", a, b}, errText: "--names has 1 names for 2 reports"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var so, se bytes.Buffer
			err := run(context.Background(), tt.args, &so, &se)
			switch {
			case tt.usage:
				if !errors.Is(err, errUsage) || !strings.Contains(se.String(), "difyload report compare") {
					t.Fatalf("err %v, stderr %q: want usage", err, se.String())
				}
			case tt.errText != "":
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err %v, want %q", err, tt.errText)
				}
			default:
				if err != nil {
					t.Fatalf("err %v; stderr %s", err, se.String())
				}
			}
			for _, want := range tt.stdout {
				if !strings.Contains(so.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, so.String())
				}
			}
		})
	}
	page, err := os.ReadFile(out)
	if err != nil || !bytes.Contains(page, []byte(`<svg class="dl-chart"`)) {
		t.Fatalf("html: %v", err)
	}
}
