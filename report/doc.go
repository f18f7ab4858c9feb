// Package report reads the run reports the project's locustfile writes on the master
// (--dify-report PATH → PATH.json, schema "difyload_report": 1, see difyload_report.py) and
// compares runs: one row per metric, one column per run, and the change of each run against
// the first (the baseline), as a terminal table or as a self-contained HTML page whose SVG
// charts overlay the runs' capacity curves and time series.
//
// The package reads only what it compares; unknown fields are ignored, so newer reports still
// load. A file that is not a difyload report, or of a schema it does not know, is an error
// that names the file.
package report
