package workload

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/difyload/difyload/sse"
)

const goodApp = `
[[apps]]
name = "faq"
type = "chat"
key_env = "FAQ_KEY"
queries = ["hi"]

[[users]]
name = "FaqUser"
tasks = [{ app = "faq" }]
`

// badWorkload is a workload that cannot run, with the place each error must name and a
// word of its fix. The Go and the Python checker must agree on the places.
type badWorkload struct {
	name, file, src string
	places          []string
	fix             string
}

// badWorkloads returns the cases afresh for each test.
func badWorkloads() []badWorkload {
	return []badWorkload{
		{"toml syntax", "w.toml", "apps = [\n[[users]]\n", []string{""}, "correct the TOML"},
		{"json syntax", "w.json", `{"apps": [}`, []string{""}, "correct the JSON"},
		{"unknown top-level field", "w.toml", "userz = 1\n" + goodApp, []string{"userz"}, "allowed here"},
		{"unknown app field", "w.toml", strings.Replace(goodApp, "queries =", "querys =", 1), []string{"apps[0].querys", "apps[0].queries"}, `did you mean "queries"`},
		{"unknown app type", "w.toml", strings.Replace(goodApp, `"chat"`, `"advanced-chat"`, 1), []string{"apps[0].type"}, `type "chatflow"`},
		{"misspelt app type", "w.toml", strings.Replace(goodApp, `"chat"`, `"workflw"`, 1), []string{"apps[0].type"}, `did you mean "workflow"`},
		{"key in the file", "w.toml", strings.Replace(goodApp, `key_env = "FAQ_KEY"`, `key = "app-secret"`, 1), []string{"apps[0].key", "apps[0].key_env"}, "key_env"},
		{"no key source", "w.toml", strings.Replace(goodApp, `key_env = "FAQ_KEY"`, ``, 1), []string{"apps[0].key_env"}, "key_env"},
		{"task names no app", "w.toml", strings.Replace(goodApp, `{ app = "faq" }`, `{ app = "fqa" }`, 1), []string{"users[0].tasks[0].app"}, "faq"},
		{"unknown wait", "w.toml", strings.Replace(goodApp, `name = "FaqUser"`, "name = \"FaqUser\"\nwait_time = { betwen = [1, 2] }", 1), []string{"users[0].wait_time.betwen"}, `did you mean "between"`},
		{"bad class name", "w.toml", strings.Replace(goodApp, `"FaqUser"`, `"Faq User"`, 1), []string{"users[0].name"}, "letters"},
		{"zero turns", "w.toml", strings.Replace(goodApp, `queries = ["hi"]`, "queries = [\"hi\"]\nconversation = { turns = 0 }", 1), []string{"apps[0].conversation.turns"}, "≥ 1"},
		{"conversation on a workflow", "w.toml", strings.Replace(strings.Replace(goodApp, `"chat"`, `"workflow"`, 1), `queries = ["hi"]`, "conversation = { turns = 2 }", 1), []string{"apps[0].conversation"}, "only chat"},
		{"no users", "w.json", `{"apps": []}`, []string{"users"}, "[[users]]"},
		{"duplicate names", "w.toml", goodApp + "\n[[knowledge_bases]]\nname = \"faq\"\ndataset_id = \"x\"\nkey_env = \"K\"\nqueries = [\"q\"]\n", []string{"knowledge_bases[0].name"}, "own name"},
		{"dataset row without a query", "w.toml", strings.Replace(goodApp, `queries = ["hi"]`, `dataset = "rows.jsonl"`, 1), []string{"apps[0].dataset (rows.jsonl line 2)"}, "non-empty \"query\""},
		{"csv without a query column", "w.toml", strings.Replace(goodApp, `queries = ["hi"]`, `dataset = "rows.csv"`, 1), []string{"apps[0].dataset (rows.csv line 1)"}, "query"},
	}
}

func writeDatasets(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "rows.jsonl"), []byte("{\"query\": \"a\"}\n{\"dept\": \"IT\"}\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "rows.csv"), []byte("question,dept\nhello,IT\n"), 0o644))
}

// places extracts PLACE from messages "workload FILE[:LINE]: PLACE: problem (fix: …)"; a
// syntax error has no place ("").
func places(msgs []string) []string {
	var out []string
	for _, m := range msgs {
		rest := m[strings.Index(m, ": ")+2:]
		place := ""
		if !strings.HasPrefix(rest, "TOML syntax") && !strings.HasPrefix(rest, "JSON syntax") {
			place = rest[:strings.Index(rest, ": ")]
		}
		out = append(out, place)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func TestBadWorkloadsAreRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeDatasets(t, dir)
	for _, tc := range badWorkloads() {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+filepath.Ext(tc.file))
			if err := os.WriteFile(path, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatal("accepted")
			}
			var msgs []string
			for _, e := range Errors(err) {
				if e.File != path {
					t.Errorf("error names file %q, want %q", e.File, path)
				}
				msgs = append(msgs, e.Error())
			}
			got := places(msgs)
			want := slices.Clone(tc.places)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("places %q, want %q\n%s", got, want, err)
			}
			if !strings.Contains(err.Error(), tc.fix) {
				t.Errorf("error lacks the fix %q:\n%s", tc.fix, err)
			}
		})
	}
}

// TestPythonCheckerAgrees runs locustfile's difyload_workload.py over the same bad
// workloads (and the good examples): the master refuses exactly what the Go worker
// refuses, naming the same places.
func TestPythonCheckerAgrees(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 (which every Locust master has) is needed: %v", err)
	}
	dir := t.TempDir()
	writeDatasets(t, dir)
	var paths []string
	for _, tc := range badWorkloads() {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+filepath.Ext(tc.file))
		if err := os.WriteFile(p, []byte(tc.src), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	root, _ := filepath.Abs("..")
	examples, _ := filepath.Glob(filepath.Join(root, "examples", "*.toml"))
	if len(examples) < 2 {
		t.Fatalf("examples/*.toml: %v", examples)
	}
	paths = append(paths, examples...)
	in, _ := json.Marshal(paths)
	cmd := exec.CommandContext(t.Context(), py, "-c", `
import json, sys
import difyload_workload as d
out = []
for p in json.loads(sys.argv[1]):
    try:
        d.load(p)
        out.append([])
    except d.WorkloadError as e:
        out.append(e.problems)
print(json.dumps(out))
`, string(in))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PYTHONPATH="+root)
	raw, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, raw)
	}
	var res [][]string
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("python output %s: %v", raw, err)
	}
	for i, tc := range badWorkloads() {
		want := slices.Clone(tc.places)
		sort.Strings(want)
		if got := places(res[i]); !slices.Equal(got, want) {
			t.Errorf("%s: Python names %q, want %q\n%s", tc.name, got, want, strings.Join(res[i], "\n"))
		}
	}
	for i, ex := range examples {
		if p := res[len(badWorkloads())+i]; len(p) != 0 {
			t.Errorf("%s: Python refuses an example: %s", ex, p)
		}
		if _, err := Load(ex); err != nil {
			t.Errorf("%s: Go refuses an example: %v", ex, err)
		}
	}
}

func TestDefaultTextIsShared(t *testing.T) {
	t.Parallel()
	seed, err := os.ReadFile("../examples/seed.toml")
	if err != nil {
		t.Fatal(err)
	}
	if string(seed) != string(defaultTOML) {
		t.Error("examples/seed.toml differs from workload/default.toml")
	}
	py, err := os.ReadFile("../difyload_workload.py")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(py), `DEFAULT_TOML = """`+string(defaultTOML)+`"""`) {
		t.Error("difyload_workload.py's DEFAULT_TOML differs from workload/default.toml")
	}
}

func TestGoodWorkload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "q.csv"), []byte("query,dept\n\"hello, world\",IT\nsecond,HR\n"), 0o644)
	src := `
[[apps]]
name = "wf"
type = "workflow"
key_env = "WF"
inputs = { lang = "en" }
files = [{ type = "image", transfer_method = "remote_url", url = "https://example.com/a.png" }]
timeout = 12.5

[[apps]]
name = "chat"
type = "agent"
key_option = "dify_simple_app_key"
dataset = "q.csv"
pick = "random"
conversation = { turns = [2, 4], think_time = [0.5, 1] }

[[users]]
name = "U"
fixed_count = 2
wait_time = { constant_throughput = 0.5 }
tasks = [{ app = "wf", tags = ["wf"], weight = 3 }, { app = "chat", name = "talk" }]

[slo]
ttft_ms = 800
`
	p := filepath.Join(dir, "w.toml")
	os.WriteFile(p, []byte(src), 0o644)
	w, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	wf, ch := w.Apps[0], w.Apps[1]
	if wf.Type != sse.ModeWorkflow || wf.QueryInput != "query" || wf.Timeout != 12500*time.Millisecond || len(wf.Files) != 1 || wf.Queries.Len() != 0 {
		t.Errorf("workflow %+v", wf)
	}
	if ch.Turns != (IntRange{2, 4}) || ch.ThinkTime != (DurationRange{500 * time.Millisecond, time.Second}) || ch.Queries.Pick != PickRandom || ch.Queries.Len() != 2 {
		t.Errorf("chat %+v", ch)
	}
	q, in, err := ch.Queries.Dataset.Row(0)
	if err != nil || q != "hello, world" || in["dept"] != "IT" {
		t.Errorf("row 0: %q %v %v", q, in, err)
	}
	u := w.Users[0]
	if u.FixedCount != 2 || u.Wait != (Wait{Kind: WaitConstantThroughput, Rate: 0.5}) || u.Tasks[1].Name != "talk" || u.Tasks[0].Weight != 3 || u.Tasks[0].Tags[0] != "wf" {
		t.Errorf("class %+v", u)
	}
	if w.SLO.TTFT != 800*time.Millisecond {
		t.Errorf("slo %+v", w.SLO)
	}
	if err := Resolve(w, func(string) (string, bool) { return "", false }, func(string) string { return "" }); err == nil ||
		!strings.Contains(err.Error(), "apps[0].key_env: environment variable WF is not set") || !strings.Contains(err.Error(), "apps[1].key_option") {
		t.Errorf("resolve: %v", err)
	}
	if err := Resolve(w, func(n string) (string, bool) { return "app-" + n, true }, func(n string) string { return "app-opt" }); err != nil || w.Apps[0].Key.Value != "app-WF" {
		t.Errorf("resolve: %v %+v", err, w.Apps[0].Key)
	}
}

func TestJSONEqualsTOML(t *testing.T) {
	t.Parallel()
	toml := "[[apps]]\nname = \"a\"\ntype = \"completion\"\nkey_env = \"K\"\nqueries = [\"q\"]\ninputs = { n = 2, on = true }\ntimeout = 1.5\n" +
		"[[users]]\nname = \"U\"\nweight = 2\nwait_time = { poisson = 2 }\ntasks = [{ app = \"a\", tags = [\"x\"] }]\n"
	js := `{"apps": [{"name": "a", "type": "completion", "key_env": "K", "queries": ["q"], "inputs": {"n": 2, "on": true}, "timeout": 1.5}],
	        "users": [{"name": "U", "weight": 2, "wait_time": {"poisson": 2}, "tasks": [{"app": "a", "tags": ["x"]}]}]}`
	a, err := Parse("w.toml", []byte(toml), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("w.json", []byte(js), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Source, b.Source = "", ""
	// Numbers inside inputs decode as int64 from TOML and float64 from JSON; both encode
	// to the same JSON in a request body.
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Errorf("TOML and JSON differ:\n%s\n%s", ja, jb)
	}
}
