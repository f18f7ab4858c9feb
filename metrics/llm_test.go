package metrics

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLLMBucket(t *testing.T) {
	t.Parallel()
	tests := []struct{ v, key, mid int64 }{
		{-5, 0, 0},
		{0, 0, 0},
		{1, 1, 1},
		{2047, 2047, 2047},
		{2048, 2048, 2049},
		{2049, 2048, 2049},
		{4095, 4094, 4095},
		{4096, 4096, 4098},
		{200_000, 199_936, 199_936 + 64},
		{200_063, 199_936, 200_000},
		{5_000, 5_000, 5_002},
		{math.MaxInt64, math.MaxInt64 >> 52 << 52, (math.MaxInt64 >> 52 << 52) + 1<<51},
	}
	for _, tt := range tests {
		if got := LLMBucket(tt.v); got != tt.key {
			t.Errorf("LLMBucket(%d) = %d, want %d", tt.v, got, tt.key)
		}
		if got := LLMBucketValue(LLMBucket(tt.v)); got != tt.mid {
			t.Errorf("LLMBucketValue(LLMBucket(%d)) = %d, want %d", tt.v, got, tt.mid)
		}
	}
	// Relative error bound and monotonicity over a wide range.
	prev := int64(-1)
	for v := int64(0); v < 1<<40; v = v*17/16 + 1 {
		k := LLMBucket(v)
		if k > v || k < prev {
			t.Fatalf("LLMBucket(%d) = %d (previous key %d)", v, k, prev)
		}
		if v > 0 {
			if rel := float64(v-k) / float64(v); rel >= 1.0/1024 {
				t.Fatalf("LLMBucket(%d) = %d: relative error %g", v, k, rel)
			}
			if rel := math.Abs(float64(LLMBucketValue(k)-v)) / float64(v); rel > 1.0/2048 {
				t.Fatalf("midpoint of %d is %d: relative error %g", v, LLMBucketValue(k), rel)
			}
		}
		prev = k
	}
}

func TestLLMQuantile(t *testing.T) {
	t.Parallel()
	var h LLMHistogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram must report 0")
	}
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	for _, tt := range []struct {
		q    float64
		want int64
	}{{0, 1}, {0.01, 1}, {0.5, 50}, {0.9, 90}, {0.95, 95}, {0.99, 99}, {1, 100}} {
		if got := h.Quantile(tt.q); got != tt.want {
			t.Errorf("Quantile(%g) = %d, want %d", tt.q, got, tt.want)
		}
	}
	if h.Count != 100 || h.Sum != 5050 || h.Max != 100 || h.Mean() != 50.5 {
		t.Errorf("count/sum/max/mean = %d/%d/%d/%g", h.Count, h.Sum, h.Max, h.Mean())
	}
	// A midpoint above the exact maximum is clamped.
	var big LLMHistogram
	big.Record(199_940) // bucket 199936..200063, midpoint 200000
	if got := big.Quantile(0.5); got != 199_940 {
		t.Errorf("clamped quantile = %d, want 199940", got)
	}
	if got := LLMQuantile(big.Counts, 0.5); got != 200_000 {
		t.Errorf("bare quantile = %d, want the midpoint 200000", got)
	}
	var m LLMHistogram
	m.Merge(&h)
	m.Merge(&big)
	if m.Count != 101 || m.Max != 199_940 || m.Sum != 5050+199_940 {
		t.Errorf("merge: %+v", m)
	}
	c := m.Clone()
	c.Record(1)
	if m.Count != 101 || m.Counts[1] != 1 {
		t.Error("Clone shares state")
	}
}

func TestSLOMet(t *testing.T) {
	t.Parallel()
	ok := StreamSample{TTFT: 200 * time.Millisecond, HasTTFT: true, TPOT: 5 * time.Millisecond, HasTPOT: true, E2E: 300 * time.Millisecond}
	noTok := StreamSample{E2E: 10 * time.Millisecond}
	oneTok := StreamSample{TTFT: 100 * time.Millisecond, HasTTFT: true, E2E: 100 * time.Millisecond}
	failed := ok
	failed.Failed = true
	tests := []struct {
		name string
		slo  SLO
		s    StreamSample
		want bool
	}{
		{"no slo", SLO{}, ok, true},
		{"no slo, failed", SLO{}, failed, false},
		{"ttft met (equal)", SLO{TTFT: 200 * time.Millisecond}, ok, true},
		{"ttft missed", SLO{TTFT: 199 * time.Millisecond}, ok, false},
		{"ttft set, no token", SLO{TTFT: time.Second}, noTok, false},
		{"tpot missed", SLO{TPOT: 4 * time.Millisecond}, ok, false},
		{"tpot set, one token", SLO{TPOT: time.Millisecond}, oneTok, true},
		{"e2e missed", SLO{E2E: 250 * time.Millisecond}, ok, false},
		{"all met", SLO{TTFT: time.Second, TPOT: 10 * time.Millisecond, E2E: time.Second}, ok, true},
	}
	for _, tt := range tests {
		if got := tt.slo.Met(tt.s); got != tt.want {
			t.Errorf("%s: Met = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// mockStream is the sample of a mock stream: ttft, then n tokens gap apart.
func mockStream(flow string, end time.Time, ttft, gap time.Duration, n int) StreamSample {
	s := StreamSample{Flow: flow, TTFT: ttft, HasTTFT: true, OutputTokens: int64(n), Chunks: n,
		E2E: ttft + time.Duration(n-1)*gap + time.Millisecond, End: end, Start: end.Add(-ttft)}
	if n > 1 {
		s.TPOT, s.HasTPOT = gap, true
	}
	for range n - 1 {
		s.Gaps = append(s.Gaps, gap)
	}
	return s
}

func TestLLMObserveDrain(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	l := NewLLM(SLO{TTFT: 250 * time.Millisecond})
	l.Observe(mockStream("A", t0.Add(500*time.Millisecond), 200*time.Millisecond, 5*time.Millisecond, 20))
	l.Observe(mockStream("B", t0.Add(1500*time.Millisecond), 300*time.Millisecond, 5*time.Millisecond, 20)) // misses the SLO
	fb := mockStream("A", t0.Add(1600*time.Millisecond), 100*time.Millisecond, 10*time.Millisecond, 3)
	fb.TPOTFromChunks = true
	fb.ServerLatency, fb.HasServerLatency = 90*time.Millisecond, true
	l.Observe(fb)
	l.Observe(StreamSample{Flow: "A", Failed: true, E2E: time.Second, End: t0.Add(1700 * time.Millisecond)})

	p := l.Drain(t0.Add(3 * time.Second))
	ints := map[string]int64{"streams": 4, "failed": 1, "good": 2, "output_tokens": 43, "chunk_fallback": 1, "version": LLMWireVersion}
	for k, want := range ints {
		if got := p[k]; got != want {
			t.Errorf("%s = %v, want %d", k, got, want)
		}
	}
	hist := p["hist"].(map[string]any)
	if _, ok := hist[LLMMetricServerTTFT]; ok {
		t.Error("an empty metric must be omitted")
	}
	ttft := hist[LLMMetricTTFT].(map[int64]int64)
	if len(ttft) != 3 || ttft[LLMBucket(200_000)] != 1 {
		t.Errorf("ttft buckets %v", ttft)
	}
	itl := hist[LLMMetricInterChunk].(map[int64]int64)
	if itl[5000] != 38 || itl[LLMBucket(10_000)] != 2 {
		t.Errorf("itl buckets %v", itl)
	}
	if got := p["max"].(map[string]any)[LLMMetricTTFT]; got != int64(300_000) {
		t.Errorf("max ttft %v", got)
	}
	if got := p["sum"].(map[string]any)[LLMMetricTokens]; got != int64(43) {
		t.Errorf("sum tokens %v", got)
	}
	tps := p["tokens_per_sec"].(map[int64]int64)
	if tps[t0.Unix()] != 20 || tps[t0.Unix()+1] != 23 {
		t.Errorf("tokens_per_sec %v", tps)
	}
	if sps := p["streams_per_sec"].(map[int64]int64); sps[t0.Unix()+1] != 3 {
		t.Errorf("streams_per_sec %v", sps)
	}
	if gps := p["good_per_sec"].(map[int64]int64); gps[t0.Unix()] != 1 || gps[t0.Unix()+1] != 1 {
		t.Errorf("good_per_sec %v", gps)
	}
	if slo := p["slo"].(map[string]any); slo["ttft_us"] != int64(250_000) || slo["tpot_us"] != int64(0) {
		t.Errorf("slo %v", slo)
	}
	if p["end"].(float64) != float64(t0.Unix()+3) {
		t.Errorf("end %v", p["end"])
	}

	// The next interval starts empty at the previous end.
	p2 := l.Drain(t0.Add(6 * time.Second))
	if p2["streams"] != int64(0) || len(p2["hist"].(map[string]any)) != 0 || p2["start"] != p["end"] {
		t.Errorf("second drain %v", p2)
	}
	// Totals are cumulative and per flow.
	tot := l.Totals()
	if tot[""].Streams != 4 || tot["A"].Streams != 3 || tot["B"].Streams != 1 || tot["A"].Failed != 1 {
		t.Errorf("totals %+v", tot)
	}
	if h := tot[""].Hist[LLMMetricTPOT]; h.Count != 3 || h.Quantile(0.5) != 5002 {
		t.Errorf("total tpot %+v", h)
	}
	if got := tot["A"].Hist[LLMMetricServerLatency].Count; got != 1 {
		t.Errorf("server latency count %d", got)
	}
	l.SetSLO(SLO{})
	if l.SLO() != (SLO{}) {
		t.Error("SetSLO")
	}
}

func TestLLMConcurrent(t *testing.T) {
	t.Parallel()
	l := NewLLM(SLO{})
	const goroutines, per = 8, 500
	var wg sync.WaitGroup
	var drained []map[string]any
	var dmu sync.Mutex
	stop := make(chan struct{})
	var dwg sync.WaitGroup
	dwg.Add(1)
	go func() {
		defer dwg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			p := l.Drain(time.Now())
			dmu.Lock()
			drained = append(drained, p)
			dmu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				l.Observe(mockStream(fmt.Sprint("f", g%2), time.Now(), time.Duration(i)*time.Microsecond, time.Millisecond, 4))
				if i%50 == 0 {
					_ = l.Totals()
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	dwg.Wait()
	drained = append(drained, l.Drain(time.Now()))
	var streams, tokens, itl int64
	for _, p := range drained {
		streams += p["streams"].(int64)
		tokens += p["output_tokens"].(int64)
		if h, ok := p["hist"].(map[string]any)[LLMMetricInterChunk]; ok {
			for _, c := range h.(map[int64]int64) {
				itl += c
			}
		}
	}
	if streams != goroutines*per || tokens != 4*goroutines*per || itl != 3*goroutines*per {
		t.Errorf("streams %d tokens %d gaps %d, want %d, %d, %d", streams, tokens, itl, goroutines*per, 4*goroutines*per, 3*goroutines*per)
	}
	if tot := l.Totals()[""]; tot.Streams != goroutines*per {
		t.Errorf("totals %d", tot.Streams)
	}
}

// llmWireBlock extracts the pure-Python wire functions from locustfile.py.
func llmWireBlock(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("../locustfile.py")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	const begin, end = "# --- llm-wire begin", "# --- llm-wire end ---"
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatal("locustfile.py lacks the llm-wire block")
	}
	return s[i:j]
}

// TestLLMPythonParity runs locustfile.py's bucket, quantile and merge code on the same
// values and payloads as this package and compares the results exactly.
func TestLLMPythonParity(t *testing.T) {
	t.Parallel()
	block := llmWireBlock(t)
	for _, c := range []string{fmt.Sprintf("LLM_MESSAGE = %q", LLMMessageType),
		fmt.Sprintf("LLM_WIRE_VERSION = %d", LLMWireVersion), fmt.Sprintf("LLM_SIGNIFICANT_BITS = %d", LLMSignificantBits)} {
		if !strings.Contains(block, c) {
			t.Errorf("locustfile.py lacks %s", c)
		}
	}
	var names []string
	for _, n := range LLMMetricNames() {
		names = append(names, fmt.Sprintf("%q", n))
	}
	if want := "LLM_METRICS = (" + strings.Join(names, ", ") + ")"; !strings.Contains(block, want) {
		t.Errorf("locustfile.py lacks %s", want)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	values := []int64{-3, 0, 1, 2047, 2048, 2049, 4095, 4096, 65535, 65536, 199_999, 200_000, 200_063, 200_064, 1 << 40, math.MaxInt64}
	for range 2000 {
		values = append(values, rng.Int64N(1<<uint(rng.IntN(45)+1)))
	}
	// Two worker payloads (as Drain makes them) that Python merges by summing dicts.
	a, b := NewLLM(SLO{}), NewLLM(SLO{})
	var all LLMHistogram
	for i := range 3000 {
		d := time.Duration(rng.Int64N(int64(2*time.Second))) + time.Duration(i%7)*time.Microsecond
		l := a
		if i%3 == 0 {
			l = b
		}
		l.Observe(StreamSample{TTFT: d, HasTTFT: true, E2E: 2 * d, OutputTokens: 1})
		all.Record(micros(d))
	}
	pa, pb := a.Drain(time.Now()), b.Drain(time.Now())
	qs := []float64{0, 0.001, 0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1}

	type payloadJSON struct {
		Hist map[string]map[string]int64 `json:"hist"`
	}
	toJSON := func(p map[string]any) payloadJSON {
		out := payloadJSON{Hist: map[string]map[string]int64{}}
		for m, h := range p["hist"].(map[string]any) {
			out.Hist[m] = map[string]int64{}
			for k, c := range h.(map[int64]int64) {
				out.Hist[m][fmt.Sprint(k)] = c
			}
		}
		return out
	}
	in, err := json.Marshal(map[string]any{"values": values, "payloads": []payloadJSON{toJSON(pa), toJSON(pb)}, "qs": qs})
	if err != nil {
		t.Fatal(err)
	}
	script := block + `
import json, sys
d = json.load(sys.stdin)
merged = {}
for p in d["payloads"]:
    llm_merge_hist(merged, p["hist"]["ttft"])
json.dump({
    "buckets": [llm_bucket(v) for v in d["values"]],
    "mids": [llm_bucket_value(llm_bucket(v)) for v in d["values"]],
    "quantiles": [llm_quantile(merged, q) for q in d["qs"]],
    "count": sum(merged.values()),
}, sys.stdout)
`
	var got struct {
		Buckets, Mids, Quantiles []int64
		Count                    int64
	}
	if err := json.Unmarshal(python(t, "", script, in), &got); err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		if got.Buckets[i] != LLMBucket(v) || got.Mids[i] != LLMBucketValue(LLMBucket(v)) {
			t.Errorf("value %d: python bucket %d / mid %d, go %d / %d", v, got.Buckets[i], got.Mids[i], LLMBucket(v), LLMBucketValue(LLMBucket(v)))
		}
	}
	if got.Count != all.Count {
		t.Errorf("python merged %d values, want %d", got.Count, all.Count)
	}
	for i, q := range qs {
		if want := LLMQuantile(all.Counts, q); got.Quantiles[i] != want {
			t.Errorf("q=%g: python %d, go %d", q, got.Quantiles[i], want)
		}
	}
}

func BenchmarkLLMObserve(b *testing.B) {
	l := NewLLM(SLO{TTFT: time.Second})
	s := mockStream("A", time.Now(), 200*time.Millisecond, 5*time.Millisecond, 100)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Observe(s)
		}
	})
}
