package workload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load reads and checks a workload file (.toml or .json); datasets are read relative to
// the file's directory. Keys are not resolved (see Resolve).
func Load(path string) (*Workload, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Problem: err.Error(), Fix: "check the path given to --workload / --dify-workload"}
	}
	dir := filepath.Dir(path)
	return Parse(path, src, func(place, name string) (*Dataset, error) {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		format := FormatOf(name)
		if format == "" {
			return nil, &Error{File: path, Place: place, Problem: fmt.Sprintf("dataset %q is neither .jsonl nor .csv", name), Fix: "name the file .jsonl (one JSON object per line) or .csv (a header with a query column)"}
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, &Error{File: path, Place: place, Problem: "cannot read the dataset: " + err.Error(), Fix: "paths are relative to the workload file"}
		}
		return ParseDataset(path, place, name, format, data)
	})
}

// Parse checks a workload's source; name's extension picks TOML or JSON. openDataset reads
// a dataset named in the file (nil: datasets are refused).
func Parse(name string, src []byte, openDataset func(place, name string) (*Dataset, error)) (*Workload, error) {
	root, err := syntax(name, src)
	if err != nil {
		return nil, err
	}
	d := &decoder{p: &problems{file: name}, origin: fromFile, dataset: openDataset}
	w := d.decode(root)
	if err := d.p.err(); err != nil {
		return nil, err
	}
	w.Source = name
	return w, nil
}

func syntax(name string, src []byte) (any, error) {
	if strings.HasSuffix(strings.ToLower(name), ".json") {
		dec := json.NewDecoder(bytes.NewReader(src))
		var root any
		if err := dec.Decode(&root); err != nil {
			e := &Error{File: name, Problem: "JSON syntax: " + err.Error(), Fix: "correct the JSON (a TOML file must end in .toml)"}
			var se *json.SyntaxError
			if errors.As(err, &se) {
				e.Line = 1 + bytes.Count(src[:min(int(se.Offset), len(src))], []byte("\n"))
			}
			return nil, e
		}
		if dec.More() {
			return nil, &Error{File: name, Problem: "JSON syntax: more than one value", Fix: "keep one top-level object"}
		}
		return root, nil
	}
	var root map[string]any
	if _, err := toml.Decode(string(src), &root); err != nil {
		e := &Error{File: name, Problem: "TOML syntax: " + err.Error(), Fix: "correct the TOML (a JSON file must end in .json)"}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			e.Line = pe.Position.Line
			e.Problem = "TOML syntax: " + pe.Message
		}
		return nil, e
	}
	return root, nil
}

// FromMessage checks a workload the master sent (MessageType): keys resolved, datasets
// inlined. An app type this worker does not know is an error like any other.
func FromMessage(data any) (*Workload, error) {
	d := &decoder{p: &problems{file: "from the master"}, origin: fromMaster}
	m, ok := data.(map[string]any)
	if !ok {
		return nil, &Error{File: "from the master", Problem: fmt.Sprintf("the message is %s, not a table", kind(data)), Fix: "use the locustfile.py of this difyload version on the master"}
	}
	src, _ := m["source"].(string)
	if e, ok := m["error"].(string); ok && e != "" {
		return nil, &Error{File: src + " (on the master)", Problem: e, Fix: "correct the workload file on the master and start the test again"}
	}
	root := m["workload"]
	if src != "" {
		d.p.file = src + " (from the master)"
	}
	w := d.decode(root)
	if err := d.p.err(); err != nil {
		return nil, err
	}
	w.Source = src
	return w, nil
}

// Resolve fills every key and dataset id that comes from an environment variable (env)
// or an option (options, e.g. the master's parsed_options or the worker's flags). A
// missing variable is an error naming it (never its value).
func Resolve(w *Workload, env func(string) (string, bool), options func(string) string) error {
	p := &problems{file: w.Source}
	res := func(place, field string, s *Secret) {
		if s.Value != "" {
			return
		}
		switch {
		case s.Env != "":
			v, ok := env(s.Env)
			if !ok || v == "" {
				p.add(place+"."+field+"_env", fmt.Sprintf("environment variable %s is not set", s.Env), fmt.Sprintf("export %s=… before starting (the value is never logged)", s.Env))
				return
			}
			s.Value = v
		case s.Option != "":
			if options != nil {
				s.Value = options(s.Option)
			}
			if s.Value == "" {
				p.add(place+"."+field+"_option", fmt.Sprintf("option %s is not set", s.Option), "pass --"+strings.ReplaceAll(s.Option, "_", "-")+" to the master")
			}
		}
	}
	for i := range w.Apps {
		res(fmt.Sprintf("apps[%d]", i), "key", &w.Apps[i].Key)
	}
	for i := range w.KnowledgeBases {
		res(fmt.Sprintf("knowledge_bases[%d]", i), "key", &w.KnowledgeBases[i].Key)
		res(fmt.Sprintf("knowledge_bases[%d]", i), "dataset_id", &w.KnowledgeBases[i].DatasetID)
	}
	return p.err()
}
