package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/difyload/difyload/difymock"
)

// fastMock is the mock with short timings, for in-process runs.
func fastMock() http.Handler {
	return difymock.New(difymock.Config{TTFT: 5 * time.Millisecond, TokenDelay: time.Millisecond, Tokens: 3,
		RetrievalLatency: time.Millisecond, PingInterval: time.Second})
}

// runFor runs `difyload run` for about one second with env and extra args, and returns its
// output and the parsed *_stats.csv and *_failures.csv rows.
func runFor(t *testing.T, env map[string]string, args ...string) (out, errOut string, stats, failures []map[string]string, err error) {
	t.Helper()
	dir := t.TempDir()
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var o, e bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"run", "-u", "2", "-r", "2", "-t", "1s", "--chat-wait", "0.02-0.05", "--retrieve-wait", "0.02-0.05",
		"--print-every", "0", "--csv", filepath.Join(dir, "x")}, args...)
	err = runEnv(ctx, full, lookup, &o, &e)
	if err == nil {
		stats = readCSV(t, filepath.Join(dir, "x_stats.csv"))
		failures = readCSV(t, filepath.Join(dir, "x_failures.csv"))
	}
	return o.String(), e.String(), stats, failures, err
}

func readCSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var rows []map[string]string
	for _, r := range recs[1:] {
		row := map[string]string{}
		for i, h := range recs[0] {
			row[h] = r[i]
		}
		rows = append(rows, row)
	}
	return rows
}

// requestRows returns the non-Aggregated rows as "Type Name" → [requests, failures].
func requestRows(rows []map[string]string) map[string][2]string {
	out := map[string][2]string{}
	for _, r := range rows {
		if r["Name"] != "Aggregated" {
			out[r["Type"]+" "+r["Name"]] = [2]string{r["Request Count"], r["Failure Count"]}
		}
	}
	return out
}

// TestTLSVerification: TLS verification is on by default ("connect: tls handshake failed"
// on every request to a server with an unknown CA), --insecure (or DIFYLOAD_INSECURE)
// skips it, and --ca-file (or DIFYLOAD_CA_FILE) trusts the given CA bundle.
func TestTLSVerification(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(fastMock())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("verified by default", func(t *testing.T) {
		t.Parallel()
		_, _, stats, failures, err := runFor(t, nil, "--host", srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		rows := requestRows(stats)
		if len(rows) != 2 {
			t.Errorf("rows %v, want only the two POST rows (no stream was opened)", rows)
		}
		for name, c := range rows {
			if c[0] == "0" || c[0] != c[1] {
				t.Errorf("%s: %s requests, %s failures: every request must fail", name, c[0], c[1])
			}
		}
		if len(failures) == 0 {
			t.Fatal("no failure rows")
		}
		for _, f := range failures {
			if f["Error"] != "connect: tls handshake failed" {
				t.Errorf("failure %q on %s, want connect: tls handshake failed", f["Error"], f["Name"])
			}
		}
	})
	for name, c := range map[string]struct {
		env  map[string]string
		args []string
	}{
		"--insecure":          {args: []string{"--insecure"}},
		"DIFYLOAD_INSECURE=1": {env: map[string]string{"DIFYLOAD_INSECURE": "1"}},
		"--ca-file":           {args: []string{"--ca-file", caFile}},
		"DIFYLOAD_CA_FILE":    {env: map[string]string{"DIFYLOAD_CA_FILE": caFile}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, _, stats, failures, err := runFor(t, c.env, append([]string{"--host", srv.URL}, c.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			rows := requestRows(stats)
			for _, r := range []string{"POST /v1/chat-messages", "SSE Full Response", "POST /v1/datasets/[id]/retrieve"} {
				if c := rows[r]; c[0] == "" || c[0] == "0" || c[1] != "0" {
					t.Errorf("%s: %v (requests, failures), want successes only", r, c)
				}
			}
			if len(failures) != 0 {
				t.Errorf("failures: %v", failures)
			}
		})
	}
	t.Run("--ca-file without certificates", func(t *testing.T) {
		t.Parallel()
		_, _, _, _, err := runFor(t, nil, "--host", srv.URL, "--ca-file", notPEM)
		if err == nil || !strings.Contains(err.Error(), "no PEM certificates") {
			t.Errorf("err = %v, want a clear --ca-file error", err)
		}
	})
}

// TestMockRefusesNonLoopback: `difyload mock` binds only loopback addresses unless
// --allow-non-loopback (or DIFYLOAD_MOCK_ALLOW_NON_LOOPBACK) says otherwise.
func TestMockRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		addr    string
		env     map[string]string
		args    []string
		refused bool
	}{
		{addr: "0.0.0.0:0", refused: true},
		{addr: "[::]:0", refused: true},
		{addr: ":0", refused: true},
		{addr: "127.0.0.1:0"},
		{addr: "localhost:0"},
		{addr: "0.0.0.0:0", args: []string{"--allow-non-loopback"}},
		{addr: "0.0.0.0:0", env: map[string]string{"DIFYLOAD_MOCK_ALLOW_NON_LOOPBACK": "true"}},
	} {
		name := c.addr + " " + strings.Join(c.args, " ") + fmt.Sprint(c.env)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			lookup := func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			var out, errb bytes.Buffer
			err := runEnv(ctx, append([]string{"mock", "--addr", c.addr}, c.args...), lookup, &out, &errb)
			if c.refused {
				if err == nil || !strings.Contains(err.Error(), "non-loopback") {
					t.Errorf("err = %v, want a refusal to bind a non-loopback address", err)
				}
				return
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want the mock to serve until cancelled", err)
			}
		})
	}
}

// Distinctive keys: the secret parts must never show up anywhere.
const (
	secretSimple  = "app-SIMPLEsecretAAAA1111wxyz"
	secretComplex = "app-COMPLEXsecretBB2222abcd"
	secretDataset = "dataset-DATASETsecretCC3333efgh"
)

// secretParts returns the parts of each key that must never be shown: the key itself and
// everything but the 4 characters that redact keeps.
func secretParts() []string {
	var out []string
	for _, k := range []string{secretSimple, secretComplex, secretDataset} {
		_, rest, _ := strings.Cut(k, "-")
		out = append(out, k, rest[:len(rest)-4])
	}
	return out
}

// leakyDify is a hostile Dify: it echoes the caller's key in every place a server could,
// to check that difyload never repeats it: error messages and codes, error events,
// malformed frames, non-JSON bodies and answers.
func leakyDify(t *testing.T) *httptest.Server {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
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
		end := `{"event":"message_end","conversation_id":"c","message_id":"m","created_at":1,"task_id":"t","id":"m","metadata":{"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2,"latency":0.1}}}`
		switch i % 6 {
		case 0:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"code":"unauthorized","message":"Access token %s is invalid","status":401}`, key)
		case 1: // an error event whose code and message are the key
			w.Header().Set("Content-Type", "text/event-stream")
			frame(msg)
			frame(fmt.Sprintf(`{"event":"error","message_id":"m","code":"%s","status":400,"message":"key %s rejected"}`, key, key))
		case 2: // a malformed frame carrying the key
			w.Header().Set("Content-Type", "text/event-stream")
			frame(msg)
			frame(`{"event":"message","answer":"` + key)
		case 3:
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "<html>internal error for %s</html>", key)
		case 4:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprintf(w, `{"code":"too_many_requests","message":"slow down, %s","status":429}`, key)
		default:
			w.Header().Set("Content-Type", "text/event-stream")
			frame(msg)
			frame(end)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestStandaloneNeverShowsKeys runs `difyload run` with keys from flags and from the
// environment against a server that echoes them everywhere, at debug level, with every
// output on (live tables, CSV, JSONL), and greps every byte for the keys' secret parts.
func TestStandaloneNeverShowsKeys(t *testing.T) {
	t.Parallel()
	srv := leakyDify(t)
	dir := t.TempDir()
	env := map[string]string{"DIFY_COMPLEX_APP_KEY": secretComplex, "DIFY_DATASET_KEY": secretDataset}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"run", "--host", srv.URL, "--simple-app-key", secretSimple, "-u", "4", "-r", "4", "-t", "2s",
		"--chat-wait", "0.01-0.02", "--retrieve-wait", "0.01-0.02", "--print-every", "500ms", "--log-level", "debug",
		"--csv", filepath.Join(dir, "run"), "--requests-jsonl", filepath.Join(dir, "requests.jsonl"), "--llm-rows"}
	if err := runEnv(ctx, args, lookup, &out, &errb); err != nil {
		t.Fatalf("run: %v\n%s", err, errb.String())
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 3 {
		t.Fatalf("want 2 CSVs and the JSONL, got %v", files)
	}
	blobs := map[string]string{"stdout": out.String(), "stderr": errb.String()}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		blobs[filepath.Base(f)] = string(b)
	}
	for _, secret := range secretParts() {
		for name, b := range blobs {
			if strings.Contains(b, secret) {
				t.Errorf("%s contains the secret %q", name, secret)
			}
		}
	}
	// The server's failures did arrive, with their stable texts.
	failures := blobs["run_failures.csv"]
	for _, want := range []string{"HTTP 401 unauthorized", "stream error: [redacted]", "malformed event JSON", "HTTP 500",
		"HTTP 429 too_many_requests", "HTTP 403 forbidden"} {
		if !strings.Contains(failures, want) {
			t.Errorf("failures CSV lacks %q:\n%s", want, failures)
		}
	}
}
