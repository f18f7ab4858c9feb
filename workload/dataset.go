package workload

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// Dataset is a query file (JSONL or CSV) kept as its raw bytes plus one offset per row:
// memory is the file's size plus 4 bytes a row, and a row is decoded only when a user picks
// it. A JSONL row is an object with a "query" string; its other fields are inputs. A CSV
// file has a header with a "query" column; the other columns are inputs (strings).
type Dataset struct {
	Name   string
	Format string // "jsonl" or "csv"
	data   []byte
	starts []uint32 // row i is data[starts[i]:ends(i)]
	header []string // CSV
	qcol   int      // CSV query column
}

// Len is the number of rows.
func (d *Dataset) Len() int { return len(d.starts) }

// Data is the raw file (what the master sends to its workers).
func (d *Dataset) Data() []byte { return d.data }

func (d *Dataset) row(i int) []byte {
	end := len(d.data)
	if i+1 < len(d.starts) {
		end = int(d.starts[i+1])
	}
	return d.data[d.starts[i]:end]
}

// Row decodes row i (0 ≤ i < Len). inputs is nil when the row has no input columns; a
// JSONL row's input values are json.RawMessage, a CSV row's strings.
func (d *Dataset) Row(i int) (query string, inputs map[string]any, err error) {
	raw := d.row(i)
	if d.Format == "csv" {
		rec, err := csv.NewReader(bytes.NewReader(raw)).Read()
		if err != nil {
			return "", nil, fmt.Errorf("dataset %s row %d: %w", d.Name, i+1, err)
		}
		if len(d.header) > 1 {
			inputs = make(map[string]any, len(d.header)-1)
		}
		for c, name := range d.header {
			if c >= len(rec) {
				break
			}
			if c == d.qcol {
				query = rec[c]
			} else {
				inputs[name] = rec[c]
			}
		}
		return query, inputs, nil
	}
	// Input values stay raw JSON (json.RawMessage): they go back into a request body as
	// they are, so only the query is decoded.
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", nil, fmt.Errorf("dataset %s row %d: %w", d.Name, i+1, err)
	}
	if err := json.Unmarshal(m["query"], &query); err != nil {
		return "", nil, fmt.Errorf("dataset %s row %d: query: %w", d.Name, i+1, err)
	}
	if len(m) > 1 {
		inputs = make(map[string]any, len(m)-1)
		for k, v := range m {
			if k != "query" {
				inputs[k] = v
			}
		}
	}
	return query, inputs, nil
}

// FormatOf is the dataset format implied by a file name: "jsonl", "csv" or "".
func FormatOf(name string) string {
	switch n := strings.ToLower(name); {
	case strings.HasSuffix(n, ".jsonl"), strings.HasSuffix(n, ".ndjson"):
		return "jsonl"
	case strings.HasSuffix(n, ".csv"):
		return "csv"
	}
	return ""
}

// ParseDataset indexes data and checks every row has a query. file and place say where
// the dataset was named, for errors.
func ParseDataset(file, place, name, format string, data []byte) (*Dataset, error) {
	bad := func(line int, problem, fix string) error {
		return &Error{File: file, Place: fmt.Sprintf("%s (%s line %d)", place, name, line), Problem: problem, Fix: fix}
	}
	if uint64(len(data)) >= math.MaxUint32 {
		return nil, &Error{File: file, Place: place, Problem: fmt.Sprintf("dataset %s is 4 GiB or more", name), Fix: "split it or sample it"}
	}
	d := &Dataset{Name: name, Format: format, data: data}
	switch format {
	case "jsonl":
		var probe struct {
			Query *string `json:"query"`
		}
		line := 0
		for off := 0; off < len(data); {
			line++
			end := bytes.IndexByte(data[off:], '\n')
			next := len(data)
			if end >= 0 {
				next = off + end + 1
			}
			raw := bytes.TrimSpace(data[off:next])
			if len(raw) > 0 {
				probe.Query = nil
				if err := json.Unmarshal(raw, &probe); err != nil {
					return nil, bad(line, "is not a JSON object: "+err.Error(), "write one JSON object per line, e.g. {\"query\": \"…\", \"dept\": \"IT\"}")
				}
				if probe.Query == nil || strings.TrimSpace(*probe.Query) == "" {
					return nil, bad(line, "row has no query", "give every row a non-empty \"query\" field")
				}
				d.starts = append(d.starts, uint32(off))
			}
			off = next
		}
		// Rows may be followed by blank lines: Row trims nothing, json ignores whitespace.
	case "csv":
		body := bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
		skip := len(data) - len(body)
		r := csv.NewReader(bytes.NewReader(body))
		r.ReuseRecord = true
		hdr, err := r.Read()
		if err != nil {
			return nil, bad(1, "no header row: "+err.Error(), "start the file with a header such as query,dept")
		}
		d.header = append([]string(nil), hdr...)
		d.qcol = -1
		for i, h := range d.header {
			if strings.TrimSpace(h) == "query" {
				d.qcol = i
			}
		}
		if d.qcol < 0 {
			return nil, bad(1, "the header has no query column", "name one column query")
		}
		for {
			off := r.InputOffset()
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				line := 0
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					line = pe.Line
				}
				return nil, bad(line, err.Error(), "fix the CSV syntax (quote fields holding commas or newlines)")
			}
			line, _ := r.FieldPos(0)
			if strings.TrimSpace(rec[d.qcol]) == "" {
				return nil, bad(line, "row has no query", "fill the query column of every row")
			}
			d.starts = append(d.starts, uint32(int64(skip)+off))
		}
	default:
		return nil, &Error{File: file, Place: place, Problem: fmt.Sprintf("dataset %s: unknown format %q", name, format), Fix: "name the file .jsonl or .csv"}
	}
	if len(d.starts) == 0 {
		return nil, &Error{File: file, Place: place, Problem: fmt.Sprintf("dataset %s has no rows", name), Fix: "add rows with a query"}
	}
	return d, nil
}
