package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/difyload/difyload/report"
)

const reportUsage = `Usage:
  difyload report compare [--html OUT.html] [--names a,b,...] A.json B.json [...]

Compares run reports (the PATH.json the master writes with --dify-report): one row per metric,
one column per run, each run's change against the first. Prints a terminal table; --html also
writes a self-contained page with the runs' capacity curves and time series overlaid.
`

func runReport(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "compare" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, reportUsage)
			return nil
		}
		fmt.Fprint(stderr, reportUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("difyload report compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, reportUsage); fs.PrintDefaults() }
	htmlOut := fs.String("html", "", "also write the comparison as HTML to this file")
	names := fs.String("names", "", "comma-separated run names (default: the file names)")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	files := fs.Args()
	if len(files) < 2 {
		fmt.Fprintln(stderr, "difyload report compare: need at least two report files")
		return errUsage
	}
	runs := make([]*report.Report, 0, len(files))
	for _, f := range files {
		r, err := report.Load(f)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	if *names != "" {
		ns := strings.Split(*names, ",")
		if len(ns) != len(runs) {
			return fmt.Errorf("--names has %d names for %d reports", len(ns), len(runs))
		}
		for i, n := range ns {
			runs[i].Name = strings.TrimSpace(n)
		}
	}
	c, err := report.Compare(runs)
	if err != nil {
		return err
	}
	if err := report.WriteText(stdout, c); err != nil {
		return err
	}
	if *htmlOut == "" {
		return nil
	}
	f, err := os.Create(*htmlOut)
	if err != nil {
		return err
	}
	if err := report.WriteHTML(f, c); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", *htmlOut, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "comparison written to %s\n", *htmlOut)
	return nil
}
