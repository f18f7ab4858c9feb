package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/difyload/difyload/runner"
	"github.com/difyload/difyload/worker"
	"github.com/difyload/difyload/workload"
)

// TestClassSwitch: the worker follows the master's workload messages: a workload's
// classes, back to the built-in ones, nothing at all for a workload it cannot run, and the
// class editor's update kept across a rebuild. Keys never reach its log.
func TestClassSwitch(t *testing.T) {
	var uf userFlags
	var lf llmFlags
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	uf.register(fs, func(string) (string, bool) { return "", false })
	lf.register(fs, func(string) (string, bool) { return "", false })
	wr, err := build(context.Background(), &uf, &lf, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer wr.close()
	var logs bytes.Buffer
	logger, _ := newLogger(&logs, "debug")
	w, err := worker.New(worker.Config{}, wr.classes, wr.stats)
	if err != nil {
		t.Fatal(err)
	}
	sw := &classSwitch{wr: wr, w: w, log: logger, current: wr.classes}
	names := func() string {
		var n []string
		for _, c := range sw.current {
			n = append(n, c.Name())
		}
		return strings.Join(n, ",")
	}
	msg := map[string]any{"source": "w.toml", "workload": map[string]any{
		"apps":  []any{map[string]any{"name": "a", "type": "chat", "key": "app-secretvalue0001", "queries": []any{"q"}}},
		"users": []any{map[string]any{"name": "U", "tasks": []any{map[string]any{"app": "a"}}}},
	}}
	sw.onMessage("update_user_class", map[string]any{"user_class_name": "U", "host": "http://edited:1"})
	sw.onMessage(workload.MessageType, msg)
	if names() != "U" {
		t.Fatalf("classes %s after a workload", names())
	}
	if _, err := sw.current[0].NewUser(1, runner.Env{Host: "http://master:1", WorkerIndex: 2}); err != nil {
		t.Fatal(err)
	}
	sw.onMessage(workload.MessageType, map[string]any{"default": true, "source": workload.DefaultSource})
	if names() != "ChatUser,RetrieveUser" {
		t.Fatalf("classes %s after the default", names())
	}
	bad := map[string]any{"source": "w.toml", "workload": map[string]any{
		"apps":  []any{map[string]any{"name": "a", "type": "hologram", "key": "app-secretvalue0001"}},
		"users": []any{map[string]any{"name": "U", "tasks": []any{map[string]any{"app": "a"}}}},
	}}
	sw.onMessage(workload.MessageType, bad)
	if names() != "" {
		t.Fatalf("classes %s after a workload the worker cannot run", names())
	}
	if !strings.Contains(logs.String(), `apps[0].type: unknown app type \"hologram\"`) {
		t.Errorf("log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "secretvalue") {
		t.Error("a key reached the log")
	}
}
