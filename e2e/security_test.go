//go:build goczmq

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/difyload/difyload/internal/locusttest"
)

// Distinctive keys whose secret parts must never appear in any output.
const (
	keyWorkerSimple  = "app-WRKsimpleSECRETaa11wxyz"
	keyWorkerComplex = "app-WRKcomplexSECRETbb22abcd"
	keyWorkerDataset = "dataset-WRKdatasetSECRETcc33efgh"
	keyMasterSimple  = "app-MSTsimpleSECRETdd44ijkl"
	keyMasterComplex = "app-MSTcomplexSECRETee55mnop"
	keyMasterDataset = "dataset-MSTdatasetSECRETff66qrst"
)

// secretOf is what redaction must hide: the key without its prefix and its last 4
// characters (the part `app-…wxyz` does not show).
func secretOf(key string) string {
	_, rest, _ := strings.Cut(key, "-")
	return rest[:len(rest)-4]
}

// echoingDify answers with the caller's key echoed in every place a server could put it:
// error messages and codes, error events, malformed frames, non-JSON error bodies, answers.
func echoingDify(t *testing.T, seen *sync.Map) *httptest.Server {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		seen.Store(key, true)
		i := n.Add(1)
		if strings.Contains(r.URL.Path, "/retrieve") {
			w.Header().Set("Content-Type", "application/json")
			if i%2 == 0 {
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintf(w, `{"code":"forbidden","message":"key %s has no access","status":403}`, key)
				return
			}
			fmt.Fprintf(w, `{"query":{"content":"%s"},"records":[]}`, key)
			return
		}
		frame := func(s string) { fmt.Fprintf(w, "data: %s\n\n", s) }
		msg := fmt.Sprintf(`{"event":"message","conversation_id":"c","message_id":"m","created_at":1,"task_id":"t","id":"m","answer":"echo %s"}`, key)
		switch i % 5 {
		case 0:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"code":"unauthorized","message":"Access token %s is invalid","status":401}`, key)
		case 1:
			w.Header().Set("Content-Type", "text/event-stream")
			frame(msg)
			frame(fmt.Sprintf(`{"event":"error","message_id":"m","code":"%s","status":400,"message":"key %s rejected"}`, key, key))
		case 2:
			w.Header().Set("Content-Type", "text/event-stream")
			frame(msg)
			frame(`{"event":"message","answer":"` + key)
		case 3:
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "<html>internal error for %s</html>", key)
		default:
			w.Header().Set("Content-Type", "text/event-stream")
			frame(msg)
			frame(`{"event":"message_end","conversation_id":"c","message_id":"m","created_at":1,"task_id":"t","id":"m","metadata":{"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2,"latency":0.1}}}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestKeysNeverShown runs a master that has keys in its options (--dify-*-app-key) and two
// workers against a server that echoes every key it receives: one worker with keys of its
// own from the environment and a flag (which win over the master's), one using the
// master's. Every byte the workers write (stdout, stderr at debug level, JSONL) and every
// file and report of the master (CSV, HTML report, web API, its log for the workers' keys)
// is searched for the secret part of each key. The workers' logs show the redacted form.
func TestKeysNeverShown(t *testing.T) {
	e := testEnv
	var seen sync.Map
	srv := echoingDify(t, &seen)
	m := e.startMaster(t, masterOpts{version: "latest", host: srv.URL, stopTO: 2, extraArgs: []string{
		"--dify-simple-app-key", keyMasterSimple, "--dify-complex-app-key", keyMasterComplex, "--dify-dataset-key", keyMasterDataset}})
	jsonlDir := t.TempDir()
	own := start(t, "worker own keys", e.workDir, []string{e.binary, "worker", "--master-host", "127.0.0.1",
		"--master-port", fmt.Sprint(m.port), "--node-id", "own-keys", "--log-level", "debug", "--complex-app-key", keyWorkerComplex,
		"--requests-jsonl", filepath.Join(jsonlDir, "own.jsonl"), "--chat-wait", "0.02-0.05", "--retrieve-wait", "0.02-0.05"},
		"DIFY_SIMPLE_APP_KEY="+keyWorkerSimple, "DIFY_DATASET_KEY="+keyWorkerDataset)
	theirs := start(t, "worker master keys", e.workDir, []string{e.binary, "worker", "--master-host", "127.0.0.1",
		"--master-port", fmt.Sprint(m.port), "--node-id", "master-keys", "--log-level", "debug",
		"--requests-jsonl", filepath.Join(jsonlDir, "theirs.jsonl"), "--chat-wait", "0.02-0.05", "--retrieve-wait", "0.02-0.05"})
	// A third worker, so that the dispatcher gives every worker both classes (with two
	// workers and two classes, each worker would get one class).
	third := start(t, "worker master keys 2", e.workDir, []string{e.binary, "worker", "--master-host", "127.0.0.1",
		"--master-port", fmt.Sprint(m.port), "--node-id", "master-keys-2", "--log-level", "debug",
		"--chat-wait", "0.02-0.05", "--retrieve-wait", "0.02-0.05"})
	w := m.web()
	for _, id := range []string{"own-keys", "master-keys", "master-keys-2"} {
		w.waitReady(t, 60*time.Second, id)
	}
	w.swarm(t, 12, 12, "")
	waitFor(t, 30*time.Second, "12 users running", func() bool { s, ok := w.stats(t); return ok && s.UserCount == 12 })
	time.Sleep(3 * time.Second)
	w.stop(t)
	waitFor(t, 20*time.Second, "stopped", func() bool { s, ok := w.stats(t); return ok && s.State == "stopped" })
	time.Sleep(time.Second)

	// What the master serves about the test.
	blobs := map[string]string{}
	for _, path := range []string{"/stats/requests", "/exceptions", "/llm/stats", "/stats/requests/csv", "/stats/failures/csv", "/stats/report", "/llm/stats/csv"} {
		resp, err := locusttest.Get(w.base + path)
		if err != nil {
			t.Errorf("GET %s: %v", path, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		blobs["master GET "+path] = string(b)
	}
	s, _ := w.stats(t)
	f := s.failures()
	if len(f) == 0 {
		t.Fatal("no failures at the master: the server was not reached")
	}
	var redactedCode bool
	for k := range f {
		redactedCode = redactedCode || strings.HasSuffix(k, "stream error: [redacted]")
	}
	if !redactedCode {
		t.Errorf("no \"stream error: [redacted]\" failure (the error event's code is the key): %v", f)
	}
	// Once the workers are registered again after the stop, the master's quit reaches them.
	for _, id := range []string{"own-keys", "master-keys", "master-keys-2"} {
		w.waitReady(t, 30*time.Second, id)
	}
	m.StopWith(syscall.SIGTERM, 20*time.Second) // the master quits and writes its CSVs
	own.wait(t, 20*time.Second)
	theirs.wait(t, 20*time.Second)
	third.wait(t, 20*time.Second)
	blobs["worker master-keys-2 output"] = third.Output()

	blobs["worker own-keys output"] = own.Output()
	blobs["worker master-keys output"] = theirs.Output()
	for _, want := range []string{"simple_app_key=app-…wxyz", "complex_app_key=app-…abcd", "dataset_key=dataset-…efgh"} {
		if !strings.Contains(own.Output(), want) {
			t.Errorf("the worker's start line lacks the redacted %s", want)
		}
	}
	// The workers' keys must not be anywhere, the master's log included; the master's
	// own keys must not be in anything the workers wrote or the master reports (its log
	// is Locust's business).
	workerKeys := []string{keyWorkerSimple, keyWorkerComplex, keyWorkerDataset}
	masterKeys := []string{keyMasterSimple, keyMasterComplex, keyMasterDataset}
	masterLog := map[string]string{"master log": m.Output()}
	for _, k := range workerKeys {
		if hits := grepFiles(t, secretOf(k), []string{m.dir, jsonlDir}, merge(blobs, masterLog)); len(hits) > 0 {
			t.Errorf("the secret part of %s is in %v", k[:4]+"…", hits)
		}
	}
	for _, k := range masterKeys {
		if hits := grepFiles(t, secretOf(k), []string{m.dir, jsonlDir}, blobs); len(hits) > 0 {
			t.Errorf("the secret part of the master's %s is in %v", k[:4]+"…", hits)
		}
		if strings.Contains(m.Output(), secretOf(k)) {
			t.Logf("note: Locust's own log shows the master's key %s…", k[:4])
		}
	}
	// The run really used every key from every source.
	for _, k := range append(workerKeys, masterKeys...) {
		if _, ok := seen.Load(k); !ok {
			t.Errorf("the server never saw the key %s…%s", k[:4], k[len(k)-4:])
		}
	}
	entries, _ := os.ReadDir(jsonlDir)
	for _, en := range entries {
		info, _ := en.Info()
		if info.Size() == 0 {
			t.Errorf("%s is empty", en.Name())
		}
	}
}

func merge(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
