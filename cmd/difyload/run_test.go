package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func noEnv(string) (string, bool) { return "", false }

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		nil,
		{"bogus"},
		{"worker", "--no-such-flag"},
		{"run", "ChatUser", "-t", "1s"},
		{"mock", "--ttft", "soon"},
	} {
		var out, errb bytes.Buffer
		err := runEnv(context.Background(), args, noEnv, &out, &errb)
		if !errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want a usage error", args, err)
		}
		if errb.Len() == 0 {
			t.Errorf("%q: printed no usage", args)
		}
	}
}

func TestBadConfigIsAClearError(t *testing.T) {
	t.Parallel()
	for args, want := range map[string]string{
		"run --chat-wait 3-1 -t 1s":             "--chat-wait",
		"run --flow-weights simple=x -t 1s":     "--flow-weights",
		"run -t forever":                        "-t",
		"run --host ftp://x -t 1s":              "http://",
		"run --queries-file /nonexistent -t 1s": "--queries-file",
		"worker --log-level loud":               "--loglevel",
		"run -t 1s NoSuchUser":                  "NoSuchUser",
		"run -t 1s --chat-user-weight -1":       "weight",
	} {
		var out, errb bytes.Buffer
		err := runEnv(context.Background(), strings.Fields(args), noEnv, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to mention %s", args, err, want)
		}
	}
}

func TestEnvConfiguresWorkerFlags(t *testing.T) {
	t.Parallel()
	env := map[string]string{"LOCUST_MASTER_NODE_PORT": "not-a-port"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var out, errb bytes.Buffer
	err := runEnv(context.Background(), []string{"worker"}, lookup, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "LOCUST_MASTER_NODE_PORT") {
		t.Fatalf("err = %v, want a clear error about LOCUST_MASTER_NODE_PORT", err)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"app-abcdefghijklmnopqrstuvwx":      "app-…uvwx",
		"dataset-abcdefghijklmnopqrstuvwx":  "dataset-…uvwx",
		"":                                  "(none)",
		"short":                             "…",
		"sk-verylongsecretwithoutprefix123": "sk-…x123",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
		if in != "" && len(in) > 8 && strings.Contains(redact(in), in[4:12]) {
			t.Errorf("redact(%q) leaks the secret part", in)
		}
	}
}

// TestStandaloneRun runs `difyload run` against the embedded mock for a few seconds and
// checks the final table and the CSV files.
func TestStandaloneRun(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"run", "-u", "4", "-r", "4", "-t", "3s", "--chat-wait", "0.05-0.1", "--retrieve-wait", "0.05-0.1",
		"--print-every", "0", "--csv", filepath.Join(dir, "run"), "--log-level", "info"}
	if err := runEnv(ctx, args, noEnv, &out, &errb); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	// --log-level reaches the run's logger: info lines appear, debug lines do not.
	for _, want := range []string{"difyload run starting", "stopping users"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("--log-level info: stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if strings.Contains(errb.String(), "level=DEBUG") {
		t.Errorf("--log-level info logged debug lines:\n%s", errb.String())
	}
	for _, want := range []string{"embedded Dify mock", "/v1/chat-messages", "TTFB", "Full Response", "/v1/datasets/[id]/retrieve", "Aggregated"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	csv, err := os.ReadFile(filepath.Join(dir, "run_stats.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SSE,TTFB,", "SSE,Full Response,", "POST,/v1/chat-messages,"} {
		if !strings.Contains(string(csv), want) {
			t.Errorf("CSV lacks %q:\n%s", want, csv)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "run_failures.csv")); err != nil {
		t.Error(err)
	}
}
