package difymock

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestJobQueueFIFO: with one job worker, concurrent relayed runs start one after the other:
// each gets its ping at once, then waits in silence; the truth reports each queue wait.
func TestJobQueueFIFO(t *testing.T) {
	t.Parallel()
	const run = 150 * time.Millisecond // TTFT 100ms + 1 further token × 50ms
	s := New(Config{TTFT: 100 * time.Millisecond, TokenDelay: 50 * time.Millisecond, Tokens: 2, JobWorkers: 1})
	ts := startServer(t, s)
	const n = 3
	var wg sync.WaitGroup
	firstByte := make([]time.Duration, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/v1/workflows/run", strings.NewReader(workflowBody))
			req.Header.Set("Authorization", "Bearer "+WorkflowAppKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := newClient().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			buf := make([]byte, 64)
			if _, err := resp.Body.Read(buf); err != nil || !strings.HasPrefix(string(buf), "event: ping\n\n") {
				t.Errorf("first bytes %q, %v: want the relay's ping", buf, err)
			}
			firstByte[i] = time.Since(start)
			evs, err := readSSE(resp.Body)
			if err != nil || len(evs) == 0 || !strings.Contains(evs[len(evs)-1].data, `"workflow_finished"`) {
				t.Errorf("stream: %v, %d events", err, len(evs))
			}
		}()
		time.Sleep(20 * time.Millisecond) // a stable FIFO order
	}
	wg.Wait()
	for i, fb := range firstByte {
		if fb > run/2 {
			t.Errorf("request %d: first byte after %v: the ping must not wait for the queue", i, fb)
		}
	}
	tr := s.Truth()
	if tr.JobWorkers != 1 || tr.JobsRunning != 0 || tr.JobsQueued != 0 {
		t.Errorf("truth job_workers %d running %d queued %d", tr.JobWorkers, tr.JobsRunning, tr.JobsQueued)
	}
	var waits []time.Duration
	for _, r := range tr.Records {
		if r.Outcome != OutcomeOK || r.RunStart == 0 {
			t.Errorf("record %+v", r)
		}
		waits = append(waits, time.Duration(r.QueueWait))
	}
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	// FIFO behind one worker: about 0, 1 and 2 runs of wait (minus the 20 ms stagger).
	for i, w := range waits {
		lo := time.Duration(i)*run - time.Duration(i)*20*time.Millisecond - 30*time.Millisecond
		if w < lo || w > time.Duration(i)*run+time.Second {
			t.Errorf("wait %d = %v, want about %v", i, w, time.Duration(i)*run)
		}
	}
}

// TestOrphanJob: a queued run whose client leaves still takes the worker when its turn comes
// and holds it for its run time, as a queued Celery task does.
func TestOrphanJob(t *testing.T) {
	t.Parallel()
	s := New(Config{TTFT: 200 * time.Millisecond, TokenDelay: time.Millisecond, Tokens: 1, JobWorkers: 1})
	ts := startServer(t, s)
	do := func(ctx context.Context) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/chat-messages", strings.NewReader(chatBody("streaming")))
		req.Header.Set("Authorization", "Bearer "+SimpleChatKey)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := newClient().Do(req); err == nil {
			_, _ = readSSE(resp.Body)
			resp.Body.Close()
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); do(context.Background()) }() // runs 0 … 200 ms
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	do(ctx) // queued, leaves at 100 ms: an orphan that runs 200 … 400 ms
	cancel()
	wg.Wait()
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	do(context.Background()) // must wait for the orphan: starts at about 400 ms
	waited := time.Since(start)
	tr := s.Truth()
	if tr.OrphanJobs != 1 {
		t.Errorf("orphan_jobs = %d, want 1", tr.OrphanJobs)
	}
	if waited < 250*time.Millisecond {
		t.Errorf("third run took %v: the orphan job did not hold the worker", waited)
	}
	if tr.Counts[EndpointChat][OutcomeClientGone] != 1 || tr.Counts[EndpointChat][OutcomeOK] != 2 {
		t.Errorf("counts %v", tr.Counts)
	}
}

// TestAPISlots: past APISlots a request waits before any response byte.
func TestAPISlots(t *testing.T) {
	t.Parallel()
	s := New(Config{TTFT: 150 * time.Millisecond, TokenDelay: time.Millisecond, Tokens: 1, APISlots: 1})
	ts := startServer(t, s)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); _, _, _ = chatCall(ChatAppKey).do(t, ts.URL) }()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	var maxWait time.Duration
	for _, r := range s.Truth().Records {
		maxWait = max(maxWait, time.Duration(r.APIWait))
	}
	if maxWait < 100*time.Millisecond {
		t.Errorf("max API wait %v, want about 130ms", maxWait)
	}
}
