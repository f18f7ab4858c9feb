package sse

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/difyload/difyload/sse/internal/jsonscan"
)

// TestTerminalFastPathMatchesStdlib: whenever the terminal-event fast path accepts an input,
// its result equals encoding/json's; the transcripts' real events take the fast path.
func TestTerminalFastPathMatchesStdlib(t *testing.T) {
	t.Parallel()
	inputs := []string{
		`{"event":"message_end","conversation_id":"c","message_id":"m","task_id":"t","id":"m","metadata":{"annotation_reply":null,"retriever_resources":[{"a":"}\"{"}],"usage":{"prompt_tokens":10,"prompt_unit_price":"0.15","completion_tokens":20,"total_tokens":30,"total_price":"0.0000135","currency":"USD","latency":0.301599,"time_to_first_token":0.200517,"time_to_generate":0.101054}},"files":[]}`,
		`{"event":"message_end","message_id":"m","metadata":{"usage":{"completion_tokens":2e1,"latency":null}}}`,
		`{"event":"message_end","message_id":"m","metadata":null}`,
		`{"event":"message_end","message_id":"m","metadata":{"usage":null}}`,
		`{"event":"message_end","message_id":"m","metadata":{}}`,
		`{"event":"message_end","message_id":null,"task_id":"t"}`,
		` { "event" : "message_end" , "message_id" : "m" , "metadata" : { "usage" : { "completion_tokens" : 3 } } } `,
		`{"event":"message_end","message_id":"m\u0041"}`,
		`{"event":"message_end","Message_ID":"x","message_id":"m"}`,
		`{"event":"message_end","message_id":5}`,
		`{"event":"message_end","metadata":"x"}`,
		`{"event":"message_end","metadata":{"usage":{"completion_tokens":"20"}}}`,
		`{"event":"message_end","metadata":{"usage":{"latency":true}}}`,
		`{"event":"message_end","metadata":{"usage":{"total_tokens":1e400}}}`,
		`{"event":"message_end","metadata":{"USAGE":{"total_tokens":1}}}`,
		`{"event":"message_end","metadata":{"usage":{"time_to_first_token":-0.5}}}`,
	}
	wfInputs := []string{
		`{"event":"workflow_finished","conversation_id":"c","message_id":"m","task_id":"t","workflow_run_id":"w","data":{"id":"w","status":"succeeded","outputs":{"answer":"x"},"error":null,"elapsed_time":0.3}}`,
		`{"event":"workflow_finished","data":{"status":"failed","error":"boom"}}`,
		`{"event":"workflow_finished","data":{"status":"stopped"}}`,
		`{"event":"workflow_finished","data":{"status":null}}`,
		`{"event":"workflow_finished","data":null}`,
		`{"event":"workflow_finished","data":[]}`,
		`{"event":"workflow_finished","data":{"status":1}}`,
		`{"event":"workflow_finished","data":{"Status":"failed"}}`,
		`{"event":"workflow_finished","task_id":"t\"q"}`,
	}
	// Every terminal event of the golden transcripts.
	files, _ := filepath.Glob("testdata/*.sse")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := bytes.TrimPrefix(bytes.TrimPrefix(sc.Bytes(), []byte("data:")), []byte(" "))
			if !jsonscan.Valid(line) {
				continue
			}
			switch name, _ := eventName(line); string(name) {
			case "message_end":
				inputs = append(inputs, string(line))
			case "workflow_finished":
				wfInputs = append(wfInputs, string(line))
			}
		}
	}
	fast := 0
	for _, in := range inputs {
		var got, want wireMessageEnd
		ok := fastMessageEnd([]byte(in), &got)
		wantErr := json.Unmarshal([]byte(in), &want)
		if ok {
			fast++
			if wantErr != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("message_end %s: fast %+v, encoding/json %+v (%v)", in, got, want, wantErr)
			}
		}
		var viaDecode wireMessageEnd
		if err := decodeMessageEnd([]byte(in), &viaDecode); (err != nil) != (wantErr != nil) || (err == nil && !reflect.DeepEqual(viaDecode, want)) {
			t.Errorf("decodeMessageEnd %s: %+v %v, want %+v %v", in, viaDecode, err, want, wantErr)
		}
	}
	for _, in := range wfInputs {
		var got, want wireWorkflowFinished
		ok := fastWorkflowFinished([]byte(in), &got)
		wantErr := json.Unmarshal([]byte(in), &want)
		if ok {
			fast++
			if wantErr != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("workflow_finished %s: fast %+v, encoding/json %+v (%v)", in, got, want, wantErr)
			}
		}
		var viaDecode wireWorkflowFinished
		if err := decodeWorkflowFinished([]byte(in), &viaDecode); (err != nil) != (wantErr != nil) || (err == nil && !reflect.DeepEqual(viaDecode, want)) {
			t.Errorf("decodeWorkflowFinished %s: %+v %v, want %+v %v", in, viaDecode, err, want, wantErr)
		}
	}
	if fast < 10 {
		t.Errorf("only %d inputs took the fast path", fast)
	}
}
