package locusttest

// Free loopback ports and the CSV files a master writes.

import (
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"os"
	"testing"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort(ctx context.Context) (int, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ReadCSV reads the CSV file at path (a master's *_stats.csv or *_failures.csv):
// the header row first. It fails the test when the file is missing or malformed.
func ReadCSV(t testing.TB, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return recs
}

// CSVRows reads the CSV file at path as one map per row, keyed by the header.
func CSVRows(t testing.TB, path string) []map[string]string {
	t.Helper()
	recs := ReadCSV(t, path)
	if len(recs) == 0 {
		t.Fatalf("%s: no header row", path)
	}
	rows := make([]map[string]string, 0, len(recs)-1)
	for _, r := range recs[1:] {
		row := make(map[string]string, len(recs[0]))
		for i, h := range recs[0] {
			if i < len(r) {
				row[h] = r[i]
			}
		}
		rows = append(rows, row)
	}
	return rows
}
