package locusttest

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestFreePort(t *testing.T) {
	t.Parallel()
	p := FreePort(t)
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("port %d not usable: %v", p, err)
	}
	ln.Close()
}

func TestCSVRows(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x_stats.csv")
	if err := os.WriteFile(path, []byte("Type,Name,Request Count\nSSE,TTFB,12\n,Aggregated,28\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rows := CSVRows(t, path)
	if len(rows) != 2 || rows[0]["Type"] != "SSE" || rows[0]["Name"] != "TTFB" || rows[1]["Request Count"] != "28" {
		t.Errorf("rows = %v", rows)
	}
	if recs := ReadCSV(t, path); len(recs) != 3 || recs[0][2] != "Request Count" {
		t.Errorf("records = %v", recs)
	}
}
