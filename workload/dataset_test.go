package workload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func bigJSONL(rows int) []byte {
	var b bytes.Buffer
	for i := range rows {
		fmt.Fprintf(&b, "{\"query\": \"question number %d about the travel policy?\", \"dept\": \"IT\", \"level\": %d}\n", i, i%7)
	}
	return b.Bytes()
}

func TestDatasetRows(t *testing.T) {
	t.Parallel()
	d, err := ParseDataset("w.toml", "apps[0].dataset", "q.jsonl", "jsonl", bigJSONL(1000))
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 1000 {
		t.Fatalf("%d rows", d.Len())
	}
	q, in, err := d.Row(999)
	if err != nil || q != "question number 999 about the travel policy?" || string(in["dept"].(json.RawMessage)) != `"IT"` || string(in["level"].(json.RawMessage)) != "5" {
		t.Errorf("row 999: %q %v %v", q, in, err)
	}
	csvData := "\xef\xbb\xbfdept,query\nIT,\"multi\nline, with comma\"\nHR,plain\n"
	c, err := ParseDataset("w.toml", "p", "q.csv", "csv", []byte(csvData))
	if err != nil {
		t.Fatal(err)
	}
	if q, in, err := c.Row(0); err != nil || q != "multi\nline, with comma" || in["dept"] != "IT" {
		t.Errorf("csv row 0: %q %v %v", q, in, err)
	}
	if q, _, _ := c.Row(1); q != "plain" {
		t.Errorf("csv row 1: %q", q)
	}
	for name, data := range map[string]string{
		"q.jsonl": "{\"query\": \"a\"}\n[1]\n",
		"q.csv":   "query\n\"unterminated\n",
	} {
		if _, err := ParseDataset("w.toml", "p", name, FormatOf(name), []byte(data)); err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// BenchmarkDatasetLoad indexes 10^6 JSONL rows (~90 MB): time per load and bytes allocated
// besides the file itself (the row offsets).
func BenchmarkDatasetLoad(b *testing.B) {
	data := bigJSONL(1_000_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseDataset("w", "p", "q.jsonl", "jsonl", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDatasetRow is the per-request cost of picking a row of a 10^6-row dataset.
func BenchmarkDatasetRow(b *testing.B) {
	d, err := ParseDataset("w", "p", "q.jsonl", "jsonl", bigJSONL(1_000_000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, err := d.Row(i % d.Len()); err != nil {
			b.Fatal(err)
		}
		i += 7919
	}
}
