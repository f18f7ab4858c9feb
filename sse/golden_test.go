package sse

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// update rewrites testdata/*.golden from the current behaviour: go test ./sse/ -run Golden -update
//
//nolint:gochecknoglobals // a test flag (go test ./sse -run Golden -update), the testing package's idiom for goldens
var update = flag.Bool("update", false, "rewrite testdata/*.golden files")

// summarize renders what a transcript produced, without times (checked by checkOrder).
func summarize(res *Result, err error) string {
	var b strings.Builder
	if err == nil {
		b.WriteString("outcome: ok\n")
	} else {
		var se *StreamError
		if !errors.As(err, &se) {
			fmt.Fprintf(&b, "outcome: untyped error %T\n", err)
		} else {
			fmt.Fprintf(&b, "outcome: error\nphase: %s\nfailure: %s\ncode: %s\n", se.Phase, se.Failure(), se.Code)
		}
	}
	fmt.Fprintf(&b, "status: %d\nevents: %d\npings: %d\nunknown: %d\nchunks: %d\n",
		res.StatusCode, res.Events, res.Pings, res.UnknownEvents, res.Chunks)
	fmt.Fprintf(&b, "workflow_status: %s\n", res.WorkflowStatus)
	u := res.Usage
	fmt.Fprintf(&b, "usage: present=%v prompt=%d completion=%d total=%d latency=%v/%v ttft=%v/%v\n",
		u.Present, u.PromptTokens, u.CompletionTokens, u.TotalTokens, u.Latency, u.HasLatency, u.TimeToFirstToken, u.HasTTFT)
	fmt.Fprintf(&b, "message_id: %s\nconversation_id: %s\ntask_id: %s\n", res.MessageID, res.ConversationID, res.TaskID)
	if res.WorkflowRunID != "" {
		fmt.Fprintf(&b, "workflow_run_id: %s\n", res.WorkflowRunID)
	}
	fmt.Fprintf(&b, "reached: first_event=%v first_data_event=%v first_token=%v end=%v\n", !res.FirstEvent.IsZero(), !res.FirstDataEvent.IsZero(), !res.FirstToken.IsZero(), !res.End.IsZero())
	if !res.FirstDataEvent.IsZero() && res.FirstDataEvent.Before(res.FirstEvent) {
		b.WriteString("ERROR: first data event before first event\n")
	}
	return b.String()
}

// transcriptMode is the app mode a transcript is read in, from its name's prefix:
// "wfapp_" a workflow app, "completion_" a completion app, "chatapp_" a basic chat app;
// every other transcript is read as a chatflow (mode "").
func transcriptMode(name string) Mode {
	for prefix, m := range map[string]Mode{"wfapp_": ModeWorkflow, "completion_": ModeCompletion, "chatapp_": ModeChat} {
		if strings.HasPrefix(name, prefix) {
			return m
		}
	}
	return ""
}

func TestGoldenTranscripts(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "*.sse"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".sse")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer "+testKey {
					http.Error(w, `{"code":"unauthorized"}`, http.StatusUnauthorized)
					return
				}
				sseHeaders(w)
				_, _ = w.Write(body)
			})
			c := newTestClient(t, Config{}, TransportConfig{})
			req := chatRequest(srv.URL)
			req.Mode = transcriptMode(name)
			res, err := c.Stream(testContext(t), req)
			if res == nil {
				t.Fatal("nil Result")
			}
			checkOrder(t, res)
			if err != nil {
				var se *StreamError
				if !errors.As(err, &se) {
					t.Fatalf("untyped error %T", err)
				}
				requireStreamError(t, err, se.Phase, se.Failure())
			}
			got := summarize(res, err)
			goldenPath := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(goldenPath, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(want) {
				t.Errorf("summary mismatch for %s\n--- got\n%s--- want\n%s", name, got, want)
			}
		})
	}
}

// TestTranscriptFramingIndependentOfReads frames every transcript with the default buffer and
// bulk reads, and with the smallest buffer and one-byte reads: the events must be identical.
func TestTranscriptFramingIndependentOfReads(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(filepath.Join("testdata", "*.sse"))
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		a := frameAll(bytes.NewReader(body), 1<<20, defaultReadBufSize)
		b := frameAll(iotest.OneByteReader(bytes.NewReader(body)), 1<<20, minReadBufSize)
		r := referenceFrame(body, 1<<20)
		if a != b || a != r {
			t.Errorf("%s: framing differs\nbulk:\n%s\none-byte:\n%s\nreference:\n%s", f, a, b, r)
		}
	}
}
