//go:build goczmq

package e2e

import (
	"fmt"
	"html"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/difyload/difyload/difymock"
	"github.com/difyload/difyload/internal/locustbin"
	"github.com/difyload/difyload/internal/locusttest"
)

// workloadKeys are the environment variables the e2e workloads name; the values are the
// mock's keys. The master resolves them and sends them to the workers.
func workloadKeys() []string {
	return []string{
		"E2E_FLOW_KEY=" + difymock.SimpleChatKey,
		"E2E_CHAT_KEY=" + difymock.ChatAppKey,
		"E2E_AGENT_KEY=" + difymock.AgentChatKey,
		"E2E_COMPLETION_KEY=" + difymock.CompletionAppKey,
		"E2E_WORKFLOW_KEY=" + difymock.WorkflowAppKey,
		"E2E_KB_KEY=" + difymock.DatasetKey,
	}
}

// everyTypeWorkload has one app of each type (the chat app holds 3-turn conversations), a
// knowledge base and two user classes whose tasks carry tags.
const everyTypeWorkload = `
[[apps]]
name = "flow"
type = "chatflow"
key_env = "E2E_FLOW_KEY"
dataset = "questions.jsonl"
pick = "random"

[[apps]]
name = "talk"
type = "chat"
key_env = "E2E_CHAT_KEY"
queries = ["first", "second", "third"]
conversation = { turns = 3, think_time = 0.05 }

[[apps]]
name = "agent"
type = "agent"
key_env = "E2E_AGENT_KEY"
queries = ["plan it"]

[[apps]]
name = "write"
type = "completion"
key_env = "E2E_COMPLETION_KEY"
query_input = "topic"
queries = ["cats"]

[[apps]]
name = "wf"
type = "workflow"
key_env = "E2E_WORKFLOW_KEY"
inputs = { lang = "en" }
files = [{ type = "image", transfer_method = "remote_url", url = "https://example.com/a.png" }]

[[knowledge_bases]]
name = "kb"
dataset_id = "` + difymock.DefaultDatasetID + `"
key_env = "E2E_KB_KEY"
queries = ["where?"]
retrieval_model = { search_method = "hybrid_search", reranking_enable = false, top_k = 3, score_threshold_enabled = false }

[[users]]
name = "Chatter"
weight = 2
wait_time = { constant = 0.05 }
tasks = [
  { app = "flow", tags = ["chat"] },
  { app = "talk", tags = ["chat", "memory"] },
  { app = "kb", tags = ["retrieval"] },
]

[[users]]
name = "Maker"
weight = 1
wait_time = { between = [0.05, 0.1] }
tasks = [
  { app = "agent", tags = ["agent"] },
  { app = "write", tags = ["gen"] },
  { app = "wf", tags = ["gen"] },
]
`

const questionsJSONL = `{"query": "How do I reset my password?", "dept": "IT"}
{"query": "Where is the expense policy?", "dept": "Finance"}
{"query": "Who approves overtime?"}
`

// workloadApps maps the workload's apps to the mock's app names and POST rows (with
// --dify-split-flows: the three apps sharing /v1/chat-messages get a row each).
func workloadApps() []struct{ name, mock, post string } {
	return []struct{ name, mock, post string }{
		{"flow", "simple_chatflow", "/v1/chat-messages flow"},
		{"talk", "chat", "/v1/chat-messages talk"},
		{"agent", "agent", "/v1/chat-messages agent"},
		{"write", "completion", "/v1/completion-messages"},
		{"wf", "workflow", "/v1/workflows/run"},
	}
}

// workloadMaster starts a web-UI master with src as its --dify-workload (and the e2e
// dataset beside it), the mock's keys in its environment and per-app rows.
func (e *env) workloadMaster(t *testing.T, version, host, src string, extra ...string) *master {
	t.Helper()
	return e.startMaster(t, masterOpts{version: version, host: host, stopTO: 5,
		files:     map[string]string{"w.toml": src, "questions.jsonl": questionsJSONL},
		env:       workloadKeys(),
		extraArgs: append([]string{"--dify-workload", "{dir}/w.toml", "--dify-split-flows"}, extra...)})
}

// workloadMockArgs are the mock's settings for the workload tests: short, steady streams.
func workloadMockArgs() []string {
	return []string{"--ttft", "20ms", "--token-delay", "2ms", "--tokens", "4", "--retrieval-latency", "5ms"}
}

// workloadRig is a mock, a web-UI workload master in front of it and one ready Go worker.
type workloadRig struct {
	mk *mock
	m  *master
	wk *proc
	w  web
}

// startWorkloadRig starts a workloadRig with src as the master's workload (see workloadMaster).
func (e *env) startWorkloadRig(t *testing.T, version, src string, extra ...string) workloadRig {
	t.Helper()
	mk := e.startMock(t, workloadMockArgs()...)
	m := e.workloadMaster(t, version, mk.URL, src, extra...)
	wk := e.startWorker(t, m)
	w := m.web()
	w.waitOneReady(t)
	return workloadRig{mk: mk, m: m, wk: wk, w: w}
}

// runRound starts users from the web UI, lets them run, stops, and waits until the master's
// totals have settled (the worker's last report follows client_stopped).
func runRound(t *testing.T, w web, users int, d time.Duration, workers int) uiStats {
	t.Helper()
	w.swarm(t, users, float64(users), "")
	waitFor(t, 30*time.Second, fmt.Sprintf("%d running users", users), func() bool {
		s, ok := w.stats(t)
		return ok && s.UserCount == users && s.State == "running"
	})
	time.Sleep(d)
	w.stop(t)
	return runRoundSettle(t, w, workers)
}

// checkPerApp compares the master's rows with the mock's per-app truth (minus before).
func checkPerApp(t *testing.T, s uiStats, tr, before difymock.Truth, wantZero map[string]bool) {
	t.Helper()
	posts := map[string]int64{}
	for _, a := range workloadApps() {
		n := tr.Apps[a.mock].Requests - before.Apps[a.mock].Requests
		posts[a.post] += n
		if wantZero[a.name] {
			if n != 0 {
				t.Errorf("app %s: the mock served %d requests, want none", a.name, n)
			}
			continue
		}
		if n == 0 {
			t.Errorf("app %s: no requests reached the mock", a.name)
		}
		full, fail := s.row("SSE", "Full Response "+a.name)
		ttfb, _ := s.row("SSE", "TTFB "+a.name)
		if full != n || ttfb != n || fail != 0 {
			t.Errorf("app %s: master Full Response %d (%d failed), TTFB %d; the mock served %d", a.name, full, fail, ttfb, n)
		}
	}
	for post, n := range posts {
		if got, fail := s.row("POST", post); got != n || fail != 0 || (n == 0) != (got == 0) {
			t.Errorf("POST %s: master %d (%d failed), mock %d", post, got, fail, n)
		}
	}
	kb := tr.Counts["retrieve"]["ok"] - before.Counts["retrieve"]["ok"]
	if got, _ := s.row("POST", "/v1/datasets/[id]/retrieve"); got != kb || (kb == 0) != wantZero["kb"] {
		t.Errorf("retrieve: master %d, mock %d (want zero: %v)", got, kb, wantZero["kb"])
	}
}

// checkConversations demands exactly 2 reuses for every conversation of the 3-turn app.
func checkConversations(t *testing.T, tr difymock.Truth, seen map[string]bool) {
	t.Helper()
	n := 0
	for id, c := range tr.Conversations {
		if seen[id] {
			continue
		}
		seen[id] = true
		if c.App != "chat" {
			if c.Reused != 0 {
				t.Errorf("conversation %s of single-turn app %s reused %d times", id, c.App, c.Reused)
			}
			continue
		}
		n++
		if c.Turns != 3 || c.Reused != 2 {
			t.Errorf("conversation %s: %d turns, %d reuses; want 3 and 2", id, c.Turns, c.Reused)
		}
	}
	if n == 0 {
		t.Error("no conversation of the 3-turn chat app at the mock")
	}
}

// TestWorkloadEveryAppType: one app of each type, a knowledge base, two classes with tags,
// from a workload file on the master; a Go worker with no copy of the file runs it. The
// master's rows per app equal the mock's per-app counts exactly, and every 3-turn
// conversation reused its conversation_id exactly twice.
func TestWorkloadEveryAppType(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			r := testEnv.startWorkloadRig(t, version, everyTypeWorkload)
			mk, m, wk, w := r.mk, r.m, r.wk, r.w
			s := runRound(t, w, 6, 4*time.Second, 1)
			tr := mk.truth(t)
			checkPerApp(t, s, tr, difymock.Truth{}, nil)
			checkConversations(t, mk.fetchTruth(t, "?records=0"), map[string]bool{})
			// The LLM tab splits TTFT by turn for the 3-turn app: 1 first turn per 2 later ones.
			var llm struct {
				Rows []struct {
					Metric string `json:"metric"`
					Count  int64  `json:"count"`
				} `json:"rows"`
			}
			if err := httpGetJSON(w.base+"/llm/stats", &llm); err != nil {
				t.Fatal(err)
			}
			turns := map[string]int64{}
			for _, r := range llm.Rows {
				turns[r.Metric] = r.Count
			}
			if first, later := turns["TTFT, first turn (ms)"], turns["TTFT, later turns (ms)"]; first == 0 || later != 2*first {
				t.Errorf("LLM tab: TTFT first turn %d, later turns %d; want later = 2 × first > 0", first, later)
			}
			if f := tr.Apps["workflow"].Files; f == 0 || f != tr.Apps["workflow"].Requests {
				t.Errorf("the workflow's files reached the mock %d times in %d requests", f, tr.Apps["workflow"].Requests)
			}
			for _, kv := range workloadKeys() {
				key := strings.SplitN(kv, "=", 2)[1]
				if strings.Contains(wk.Output(), key) || strings.Contains(m.Output(), key) {
					t.Errorf("a key appears in a log")
				}
			}
		})
	}
}

// TestWorkloadTagsOnMaster: --tags on the master selects the tasks Go workers run.
func TestWorkloadTagsOnMaster(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			r := testEnv.startWorkloadRig(t, version, everyTypeWorkload, "--tags", "gen", "retrieval")
			s := runRound(t, r.w, 6, 3*time.Second, 1)
			checkPerApp(t, s, r.mk.truth(t), difymock.Truth{}, map[string]bool{"flow": true, "talk": true, "agent": true})
		})
	}
}

const editedBefore = `
[[apps]]
name = "a"
type = "chatflow"
key_env = "E2E_FLOW_KEY"
queries = ["before"]

[[users]]
name = "U"
wait_time = { constant = 0.05 }
tasks = [{ app = "a" }]
`

const editedAfter = `
[[apps]]
name = "a"
type = "completion"
key_env = "E2E_COMPLETION_KEY"
queries = ["after"]

[[users]]
name = "U"
wait_time = { constant = 0.05 }
tasks = [{ app = "a" }]
`

// TestWorkloadEditedBetweenStarts: the workload file changes between two web-UI starts;
// the same Go worker process (no restart, no copy of the file) runs the new one.
func TestWorkloadEditedBetweenStarts(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			r := testEnv.startWorkloadRig(t, version, editedBefore)
			mk, m, wk, w := r.mk, r.m, r.wk, r.w
			runRound(t, w, 3, 2*time.Second, 1)
			first := mk.truth(t)
			if first.Apps["simple_chatflow"].Requests == 0 || first.Apps["completion"].Requests != 0 {
				t.Fatalf("round 1 ran the wrong app: %+v", first.Apps)
			}
			if err := os.WriteFile(filepath.Join(m.dir, "w.toml"), []byte(editedAfter), 0o644); err != nil {
				t.Fatal(err)
			}
			s := runRound(t, w, 3, 2*time.Second, 1)
			second := mk.truth(t)
			if got := second.Apps["simple_chatflow"].Requests; got != first.Apps["simple_chatflow"].Requests {
				t.Errorf("round 2 still ran the chatflow (%d more requests)", got-first.Apps["simple_chatflow"].Requests)
			}
			n := second.Apps["completion"].Requests
			if got, _ := s.row("SSE", "Full Response a"); n == 0 || got != n {
				t.Errorf("round 2: master Full Response a = %d, the mock's completion app served %d", got, n)
			}
			if wk.Exited() {
				t.Fatal("the worker exited")
			}
			if c := strings.Count(wk.Output(), "workload from the master"); c != 2 {
				t.Errorf("the worker took %d workloads from the master, want 2", c)
			}
		})
	}
}

// TestWorkloadMixedFleet: a Python worker (running the same workload file) and a Go worker
// (with none) under one 2.46 master: one set of rows, equal to the mock's per-app counts.
func TestWorkloadMixedFleet(t *testing.T) {
	e := testEnv
	mk := e.startMock(t, workloadMockArgs()...)
	m := e.workloadMaster(t, "latest", mk.URL, everyTypeWorkload)
	argv := append(locustbin.Require(t, locustbin.Latest), "-f", filepath.Join(m.rel, "locustfile.py"), "--worker",
		"--master-host", "127.0.0.1", "--master-port", strconv.Itoa(m.port), "--dify-workload", filepath.Join(m.rel, "w.toml"))
	start(t, "python worker", e.workDir, argv)
	e.startWorker(t, m)
	w := m.web()
	waitFor(t, 60*time.Second, "two ready workers", func() bool {
		s, ok := w.stats(t)
		return ok && len(s.Workers) == 2 && s.Workers[0].State == "ready" && s.Workers[1].State == "ready"
	})
	w.swarm(t, 12, 12, "")
	waitFor(t, 30*time.Second, "users on both workers", func() bool {
		s, ok := w.stats(t)
		return ok && len(s.Workers) == 2 && s.Workers[0].UserCount > 0 && s.Workers[1].UserCount > 0 && s.UserCount == 12
	})
	time.Sleep(4 * time.Second)
	w.stop(t)
	s := runRoundSettle(t, w, 2)
	tr := mk.fetchTruth(t, "?records=0")
	checkPerApp(t, s, tr, difymock.Truth{}, nil)
	checkConversations(t, tr, map[string]bool{})
	var names []string
	for _, r := range s.Stats {
		if r.Name != "Aggregated" {
			names = append(names, r.Method+" "+r.Name)
		}
	}
	sort.Strings(names)
	if got, want := strings.Join(names, "\n"), strings.Join(expectedRows(), "\n"); got != want {
		t.Errorf("rows:\n%s\nwant:\n%s", got, want)
	}
}

// expectedRows are the rows of everyTypeWorkload with --dify-split-flows.
func expectedRows() []string {
	rows := []string{"POST /v1/datasets/[id]/retrieve"}
	for _, a := range workloadApps() {
		rows = append(rows, "POST "+a.post, "SSE TTFB "+a.name, "SSE Full Response "+a.name)
	}
	sort.Strings(rows)
	return rows
}

// runRoundSettle waits, after a stop, for every worker to be ready and the totals to settle.
func runRoundSettle(t *testing.T, w web, workers int) uiStats {
	t.Helper()
	waitFor(t, 60*time.Second, "every worker ready again after stop", func() bool {
		s, ok := w.stats(t)
		if !ok || s.State != "stopped" || len(s.Workers) != workers {
			return false
		}
		for _, wk := range s.Workers {
			if wk.State != "ready" {
				return false
			}
		}
		return true
	})
	var last uiStats
	stable := 0
	waitFor(t, 20*time.Second, "the master's totals to settle", func() bool {
		s, _ := w.stats(t)
		if fmt.Sprint(s.Stats) == fmt.Sprint(last.Stats) {
			stable++
		} else {
			stable = 0
		}
		last = s
		return stable >= 8
	})
	return last
}

// TestRunWorkloadSameRows: `difyload run --workload` runs the same file stand-alone and
// reports the same rows, equal to the mock's per-app counts.
func TestRunWorkloadSameRows(t *testing.T) {
	e := testEnv
	mk := e.startMock(t, workloadMockArgs()...)
	dir := t.TempDir()
	for name, content := range map[string]string{"w.toml": everyTypeWorkload, "questions.jsonl": questionsJSONL} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := start(t, "difyload run", dir, []string{e.binary, "run", "--workload", "w.toml", "--host", mk.URL, "-u", "6", "-r", "6",
		"-t", "4s", "--split-flows", "--csv", "run", "--print-every", "0", "--stop-timeout", "20s"}, workloadKeys()...)
	p.wait(t, 60*time.Second)
	if code := p.exitCode(t, time.Second); code != 0 {
		t.Fatalf("difyload run exited %d:\n%s", code, p.Output())
	}
	tr := mk.fetchTruth(t, "?records=0")
	var s uiStats
	var names []string
	for _, r := range csvRows(t, filepath.Join(dir, "run_stats.csv")) {
		if r["Name"] == "Aggregated" {
			continue
		}
		s.Stats = append(s.Stats, struct {
			Method      string `json:"method"`
			Name        string `json:"name"`
			NumRequests int64  `json:"num_requests"`
			NumFailures int64  `json:"num_failures"`
		}{r["Type"], r["Name"], atoi(t, r["Request Count"]), atoi(t, r["Failure Count"])})
		names = append(names, r["Type"]+" "+r["Name"])
	}
	checkPerApp(t, s, tr, difymock.Truth{}, nil)
	checkConversations(t, tr, map[string]bool{})
	sort.Strings(names)
	if got, want := strings.Join(names, "\n"), strings.Join(expectedRows(), "\n"); got != want {
		t.Errorf("rows:\n%s\nwant:\n%s", got, want)
	}
}

// TestWorkloadRefusedAtMasterStart: a workload that cannot run stops the master at start
// with the file, the place and the fix, and never a key.
func TestWorkloadRefusedAtMasterStart(t *testing.T) {
	bad := []struct{ name, src, dataset, want string }{
		{"syntax", "[[apps]\nname = 1\n", "", "TOML syntax"},
		{"unknown app type", strings.Replace(editedBefore, `"chatflow"`, `"chatbot"`, 1), "", `apps[0].type: unknown app type 'chatbot'`},
		{"unknown field", strings.Replace(editedBefore, "queries =", "qeuries =", 1), "", "apps[0].qeuries: unknown field (fix: did you mean 'queries'?"},
		{"missing key variable", strings.Replace(editedBefore, "E2E_FLOW_KEY", "E2E_UNSET_KEY", 1), "", "apps[0].key_env: environment variable E2E_UNSET_KEY is not set (fix: export E2E_UNSET_KEY="},
		// An empty query is a silent setup error on a 1.13 relay: a workload cannot send one.
		{"empty query", strings.Replace(editedBefore, `queries = ["before"]`, `queries = [" "]`, 1), "", `apps[0].queries[0]: is not a non-empty string`},
		{"dataset row without a query", strings.Replace(editedBefore, `queries = ["before"]`, `dataset = "questions.jsonl"`, 1),
			"{\"query\": \"ok\"}\n{\"dept\": \"IT\"}\n", `apps[0].dataset (questions.jsonl line 2): row has no query`},
	}
	for _, version := range masterVersions() {
		for _, tc := range bad {
			t.Run(version+"/"+tc.name, func(t *testing.T) {
				e := testEnv
				files := map[string]string{"w.toml": tc.src}
				if tc.dataset != "" {
					files["questions.jsonl"] = tc.dataset
				}
				m := e.startMaster(t, masterOpts{version: version, headless: true, users: 1, rate: 1, runTime: "5s", expect: 1,
					files: files, env: workloadKeys(), noWait: true, extraArgs: []string{"--dify-workload", "{dir}/w.toml"}})
				if code := m.exitCode(t, 60*time.Second); code == 0 {
					t.Fatalf("the master started:\n%s", m.Output())
				}
				out := m.Output()
				if !strings.Contains(out, "workload "+m.rel+"/w.toml") || !strings.Contains(out, tc.want) || !strings.Contains(out, "fix:") {
					t.Errorf("the master's message lacks the file, %q or the fix:\n%s", tc.want, out)
				}
				for _, kv := range workloadKeys() {
					if strings.Contains(out, strings.SplitN(kv, "=", 2)[1]) {
						t.Error("a key is in the master's output")
					}
				}
			})
		}
	}
}

// TestWorkerRefusesWorkloadItCannotRun: a master whose locustfile knows an app type this
// Go worker does not ("voice"): the worker says so in the Exceptions tab and its log, runs
// nothing rather than something different, and stays connected.
func TestWorkerRefusesWorkloadItCannotRun(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			e := testEnv
			mk := e.startMock(t)
			py, err := os.ReadFile(filepath.Join(e.root, "difyload_workload.py"))
			if err != nil {
				t.Fatal(err)
			}
			newer := strings.Replace(string(py), `"completion", "workflow")`, `"completion", "workflow", "voice")`, 1)
			newer = strings.Replace(newer, `"workflow": "/v1/workflows/run"}`, `"workflow": "/v1/workflows/run", "voice": "/v1/voice"}`, 1)
			if newer == string(py) {
				t.Fatal("could not make the newer module")
			}
			src := strings.Replace(editedBefore, `"chatflow"`, `"voice"`, 1)
			m := e.startMaster(t, masterOpts{version: version, host: mk.URL, stopTO: 5,
				files: map[string]string{"w.toml": src, "difyload_workload.py": newer},
				env:   workloadKeys(), extraArgs: []string{"--dify-workload", "{dir}/w.toml"}})
			wk := e.startWorker(t, m)
			w := m.web()
			w.waitOneReady(t)
			w.swarm(t, 2, 2, "")
			var ex []exception
			waitFor(t, 30*time.Second, "the refusal in the Exceptions tab", func() bool {
				ex = w.exceptions(t)
				for i := range ex { // 2.12.1 HTML-escapes them
					ex[i].Msg, ex[i].Traceback = html.UnescapeString(ex[i].Msg), html.UnescapeString(ex[i].Traceback)
				}
				for _, x := range ex {
					if strings.Contains(x.Msg, "cannot run the master's workload") {
						return true
					}
				}
				return false
			})
			var msgs []string
			for _, x := range ex {
				msgs = append(msgs, x.Msg+"\n"+x.Traceback)
			}
			all := strings.Join(msgs, "\n")
			if !strings.Contains(all, `apps[0].type: unknown app type "voice"`) || !strings.Contains(all, "no user class U") {
				t.Errorf("exceptions:\n%s", all)
			}
			time.Sleep(2 * time.Second)
			if tr := mk.truth(t); len(tr.Apps) != 0 || len(tr.Counts) != 0 {
				t.Errorf("the worker ran something: %+v %+v", tr.Apps, tr.Counts)
			}
			s, _ := w.stats(t)
			if len(s.Workers) != 1 || s.Workers[0].UserCount != 0 {
				t.Errorf("workers %+v, want the one worker connected with 0 users", s.Workers)
			}
			w.stop(t)
			w.waitOneReady(t)
			if !strings.Contains(wk.Output(), "refusing the master's workload") {
				t.Error("the worker's log does not say it refused the workload")
			}
			for _, kv := range workloadKeys() {
				key := strings.SplitN(kv, "=", 2)[1]
				if strings.Contains(all, key) || strings.Contains(wk.Output(), key) {
					t.Error("a key reached the Exceptions tab or the worker's log")
				}
			}
		})
	}
}

// TestUpdateUserClassReachesGoWorkers: the web UI's class editor (Locust 2.25+,
// update_user_class) changes a class's tasks and host on a Go worker, and the change
// survives the workload the master sends at the next start.
func TestUpdateUserClassReachesGoWorkers(t *testing.T) {
	e := testEnv
	mk := e.startMock(t, workloadMockArgs()...)
	m := e.workloadMaster(t, "latest", "http://127.0.0.1:9", everyTypeWorkload, "--class-picker")
	e.startWorker(t, m)
	w := m.web()
	w.waitOneReady(t)
	for _, cls := range []struct {
		name  string
		tasks []string
	}{{"Maker", []string{"write"}}, {"Chatter", []string{"kb"}}} {
		body := fmt.Sprintf(`{"user_class_name": %q, "host": %q, "weight": 1, "fixed_count": 0, "tasks": [%q]}`, cls.name, mk.URL, cls.tasks[0])
		resp, err := locusttest.Post(w.base+"/user", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST /user: %d", resp.StatusCode)
		}
	}
	s := runRound(t, w, 4, 3*time.Second, 1)
	checkPerApp(t, s, mk.truth(t), difymock.Truth{}, map[string]bool{"flow": true, "talk": true, "agent": true, "wf": true})
}

// TestWorkloadLargeDataset: a 250,000-row dataset (about 20 MiB, beyond a protocol frame's
// usual size) travels inline from the master to the Go worker, which runs it.
func TestWorkloadLargeDataset(t *testing.T) {
	e := testEnv
	mk := e.startMock(t, "--ttft", "20ms", "--token-delay", "2ms", "--tokens", "4")
	var rows strings.Builder
	for i := range 250_000 {
		fmt.Fprintf(&rows, "{\"query\": \"question %d: how do I file a travel expense report?\", \"dept\": \"IT\"}\n", i)
	}
	src := strings.Replace(editedBefore, `queries = ["before"]`, `dataset = "big.jsonl"`+"\npick = \"random\"", 1)
	m := e.startMaster(t, masterOpts{version: "2.12.1", host: mk.URL, stopTO: 5,
		files: map[string]string{"w.toml": src, "big.jsonl": rows.String()},
		env:   workloadKeys(), extraArgs: []string{"--dify-workload", "{dir}/w.toml", "--dify-split-flows"}})
	wk := e.startWorker(t, m)
	w := m.web()
	w.waitOneReady(t)
	s := runRound(t, w, 4, 2*time.Second, 1)
	n := mk.truth(t).Apps["simple_chatflow"].Requests
	if got, _ := s.row("SSE", "Full Response a"); n == 0 || got != n {
		t.Errorf("master Full Response a = %d, the mock served %d", got, n)
	}
	if !strings.Contains(wk.Output(), "workload from the master") {
		t.Error("the worker did not take the workload")
	}
}

// shapeLocustfile is how a team adds a LoadTestShape to the project's locustfile: a file of
// its own that imports it. The shape picks the workload's Maker class alone.
const shapeLocustfile = `from locustfile import *  # noqa: F401,F403  (the workload's user classes)
import locustfile
from locust import LoadTestShape


class MakersOnly(LoadTestShape):
    def tick(self):
        if self.get_run_time() < 4:
            return (4, 4, [locustfile.Maker])
        return None
`

// TestWorkloadClassesInLoadTestShape: a LoadTestShape (2.46) sees the workload's classes
// and its choice reaches the Go worker.
func TestWorkloadClassesInLoadTestShape(t *testing.T) {
	e := testEnv
	mk := e.startMock(t, workloadMockArgs()...)
	m := e.startMaster(t, masterOpts{version: "latest", host: mk.URL, stopTO: 5,
		files: map[string]string{"w.toml": everyTypeWorkload, "questions.jsonl": questionsJSONL, "shaped.py": shapeLocustfile},
		env:   workloadKeys(),
		extraArgs: []string{"-f", "{dir}/shaped.py", "--headless", "--expect-workers", "1",
			"--dify-workload", "{dir}/w.toml", "--dify-split-flows"}})
	e.startWorker(t, m)
	m.wait(t, 90*time.Second)
	rows := csvRows(t, filepath.Join(m.dir, "run_stats.csv"))
	tr := mk.truth(t)
	for _, a := range workloadApps() {
		n := tr.Apps[a.mock].Requests
		maker := a.name == "agent" || a.name == "write" || a.name == "wf"
		if maker != (n > 0) {
			t.Errorf("app %s: the mock served %d requests (Maker's app: %v)", a.name, n, maker)
		}
		if r := statsRow(rows, "SSE", "Full Response "+a.name); maker && (r == nil || atoi(t, r["Request Count"]) != n) {
			t.Errorf("app %s: master row %v, mock %d", a.name, r, n)
		}
	}
}
