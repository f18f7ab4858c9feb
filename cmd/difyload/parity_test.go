package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/runner"
)

func TestParseLevelLocustNames(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]slog.Level{
		"DEBUG": slog.LevelDebug, "info": slog.LevelInfo, "WARNING": slog.LevelWarn, "warn": slog.LevelWarn,
		"ERROR": slog.LevelError, "CRITICAL": slog.LevelError + 4, "critical": slog.LevelError + 4,
	} {
		got, err := parseLevel(in)
		if err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	if _, err := parseLevel("LOUD"); err == nil {
		t.Error("LOUD accepted")
	}
}

func TestLogFlagsLocustSpellingsAndLogfile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "w.log")
	for _, c := range []struct {
		args []string
		env  map[string]string
		want slog.Level
	}{
		{[]string{"-L", "WARNING"}, nil, slog.LevelWarn},
		{[]string{"--loglevel", "DEBUG"}, nil, slog.LevelDebug},
		{nil, map[string]string{"LOCUST_LOGLEVEL": "ERROR"}, slog.LevelError},
		{[]string{"-L", "CRITICAL", "--logfile", file}, nil, slog.LevelError + 4},
	} {
		var f logFlags
		fs := newTestFlagSet()
		f.register(fs, func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }, "INFO")
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		log, ring, closeLog, err := f.open(&stderr)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if !log.Enabled(context.Background(), c.want) || log.Enabled(context.Background(), c.want-1) {
			t.Errorf("%v %v: level not %v", c.args, c.env, c.want)
		}
		log.Log(context.Background(), c.want, "hello")
		if err := closeLog(); err != nil {
			t.Fatal(err)
		}
		if got := ring.Lines(); len(got) != 1 || !strings.Contains(got[0], "hello") {
			t.Errorf("ring %q", got)
		}
		if f.file != "" {
			b, _ := os.ReadFile(file)
			if !strings.Contains(string(b), "level=CRITICAL msg=hello") || stderr.Len() != 0 {
				t.Errorf("--logfile got %q, stderr %q", b, stderr.String())
			}
		}
	}
}

func TestLogRingKeepsTheLast500(t *testing.T) {
	t.Parallel()
	r := newLogRing(maxLogLines)
	for i := range 1200 {
		r.Write([]byte(strings.Repeat("x", i%7) + "line\n"))
	}
	if got := r.Lines(); len(got) != maxLogLines {
		t.Fatalf("%d lines, want %d", len(got), maxLogLines)
	}
}

type namedClass string

func (n namedClass) Name() string                                 { return string(n) }
func (n namedClass) Weight() int                                  { return 1 }
func (n namedClass) NewUser(int, runner.Env) (runner.User, error) { return nil, nil }

func TestSelectClasses(t *testing.T) {
	t.Parallel()
	all := []runner.UserClass{namedClass("ChatUser"), namedClass("RetrieveUser")}
	names := func(cs []runner.UserClass) (out []string) {
		for _, c := range cs {
			out = append(out, c.Name())
		}
		return out
	}
	for _, c := range []struct {
		args    []string
		weights map[string]int
		want    []string
		err     string
	}{
		{nil, nil, []string{"ChatUser", "RetrieveUser"}, ""},
		{[]string{"RetrieveUser"}, nil, []string{"RetrieveUser"}, ""},
		{[]string{"ChatUser", "ChatUser"}, nil, []string{"ChatUser"}, ""},
		{nil, map[string]int{"ChatUser": 0, "RetrieveUser": 2}, []string{"RetrieveUser"}, ""},
		{[]string{"ChatUser"}, map[string]int{"ChatUser": 0}, nil, "no user class left"},
		{nil, map[string]int{"ChatUser": -1}, nil, "weight -1"},
		{[]string{"Nope"}, nil, nil, `unknown user class "Nope" (available: ChatUser, RetrieveUser)`},
	} {
		got, err := selectClasses(all, c.args, c.weights)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v %v: err %v, want %q", c.args, c.weights, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(names(got), c.want) {
			t.Errorf("%v %v: %v %v, want %v", c.args, c.weights, names(got), err, c.want)
		}
	}
}

// `difyload run RetrieveUser` runs only RetrieveUser; --chat-user-weight 0 means no ChatUser.
func TestRunClassArgumentsAndZeroWeight(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"RetrieveUser"},
		{"--chat-user-weight", "0"},
	} {
		var out, errb bytes.Buffer
		argv := append([]string{"run", "-u", "3", "-r", "100", "-t", "1500ms", "--print-every", "0", "--retrieve-wait", "0.01-0.02"}, args...)
		if err := runEnv(context.Background(), argv, noEnv, &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
		if strings.Contains(out.String(), "/v1/chat-messages") || !strings.Contains(out.String(), "/v1/datasets/[id]/retrieve") {
			t.Errorf("%v: want only RetrieveUser rows:\n%s", args, out.String())
		}
	}
}

// The worker's stats source counts served requests unless Aggregated-all is on, and the
// master's options switch it and the LLM message per spawn.
func TestMasterOptionsSwitchAggregateAndLLM(t *testing.T) {
	t.Parallel()
	st := &servedStats{stats: metrics.NewStats()}
	opts := masterOptions{stats: st}
	record := func() {
		st.stats.Record(metrics.Sample{Method: "POST", Name: "/v1/chat-messages", Duration: time.Millisecond})
		st.stats.Record(metrics.Sample{Method: "SSE", Name: "TTFB", Duration: time.Millisecond})
		st.stats.Record(metrics.Sample{Method: "SSE", Name: "Full Response", Duration: time.Millisecond})
	}
	for _, c := range []struct {
		po       map[string]any
		wantReqs int64
		wantLLM  bool
	}{
		{nil, 1, false}, // a master without the project's locustfile
		{map[string]any{optMessages: "difyload_llm"}, 1, true},
		{map[string]any{optMessages: "other, difyload_llm", optAggregateAll: true}, 3, true},
		{map[string]any{optMessages: "other"}, 1, false},
	} {
		opts.onSpawn(runner.Env{ParsedOptions: c.po})
		record()
		if got := st.Drain(time.Now()).Total.NumRequests; got != c.wantReqs || opts.llm.Load() != c.wantLLM {
			t.Errorf("%v: Aggregated %d (want %d), llm %v (want %v)", c.po, got, c.wantReqs, opts.llm.Load(), c.wantLLM)
		}
	}
}

func newTestFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func TestKeepNamed(t *testing.T) {
	t.Parallel()
	all := []runner.UserClass{namedClass("ChatUser"), namedClass("RetrieveUser"), namedClass("WorkflowUser")}
	if got := keepNamed(all, nil); len(got) != 3 {
		t.Fatalf("no names: %d classes", len(got))
	}
	got := keepNamed(all, []string{"WorkflowUser", "Absent", "ChatUser"})
	if len(got) != 2 || got[0].Name() != "ChatUser" || got[1].Name() != "WorkflowUser" {
		t.Fatalf("got %v", got)
	}
}
