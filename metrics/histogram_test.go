package metrics

import (
	"sync"
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	t.Parallel()
	h := NewHistogram()
	if h.Count() != 0 || h.Max() != 0 || h.ValueAtQuantile(0.5) != 0 || h.Mean() != 0 {
		t.Fatal("new histogram not empty")
	}
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	h.Record(-time.Second)          // clamped to 0
	h.Record(2 * time.Hour)         // clamped to 1 h
	h.Record(500 * time.Nanosecond) // truncated to 0 µs
	if got := h.Count(); got != 1003 {
		t.Errorf("Count = %d, want 1003", got)
	}
	within := func(name string, got, want time.Duration) {
		t.Helper()
		if diff := got - want; diff < -want/500 || diff > want/500 {
			t.Errorf("%s = %v, want %v ± 0.2%%", name, got, want)
		}
	}
	within("p50", h.ValueAtQuantile(0.5), 501*time.Millisecond)
	within("p99", h.ValueAtQuantile(0.99), 993*time.Millisecond)
	within("max", h.Max(), time.Hour)
	h.Reset()
	if h.Count() != 0 || h.Max() != 0 {
		t.Errorf("after Reset: count %d max %v", h.Count(), h.Max())
	}
}

func TestHistogramMergeAndEncode(t *testing.T) {
	t.Parallel()
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	for i := range 5000 {
		d := time.Duration(i*i) * time.Microsecond
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
		all.Record(d)
	}
	a.Merge(b)
	if a.Count() != all.Count() {
		t.Fatalf("merged count %d, want %d", a.Count(), all.Count())
	}
	for _, q := range []float64{0, 0.1, 0.5, 0.9, 0.99, 0.999, 1} {
		if g, w := a.ValueAtQuantile(q), all.ValueAtQuantile(q); g != w {
			t.Errorf("q%v: merged %v, direct %v", q, g, w)
		}
	}
	if b.Count() != 2500 {
		t.Errorf("Merge modified its argument: count %d", b.Count())
	}

	a.Merge(a) // self-merge doubles
	if a.Count() != 2*all.Count() {
		t.Errorf("self merge count %d, want %d", a.Count(), 2*all.Count())
	}

	enc, err := all.Encode()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodeHistogram(enc)
	if err != nil {
		t.Fatal(err)
	}
	snapHist, err := HistogramFromSnapshot(all.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []float64{0.5, 0.99, 1} {
		if dec.ValueAtQuantile(q) != all.ValueAtQuantile(q) || snapHist.ValueAtQuantile(q) != all.ValueAtQuantile(q) {
			t.Errorf("q%v: decoded %v, snapshot %v, original %v", q, dec.ValueAtQuantile(q), snapHist.ValueAtQuantile(q), all.ValueAtQuantile(q))
		}
	}
	t.Logf("encoded size %d bytes for %d values", len(enc), all.Count())

	for _, bad := range [][]byte{nil, []byte("x"), []byte("not base64 at all!!"), []byte("HISTFAAAACB4nJNpmSzMwMDAyQABzFCaEUoz"), enc[:len(enc)/2]} {
		if _, err := DecodeHistogram(bad); err == nil {
			t.Errorf("DecodeHistogram(%q) succeeded", bad)
		}
	}
	if _, err := HistogramFromSnapshot(nil); err == nil {
		t.Error("nil snapshot accepted")
	}
}

func TestHistogramConcurrent(t *testing.T) {
	t.Parallel()
	h, other := NewHistogram(), NewHistogram()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 1000 {
				h.Record(time.Duration(g*1000+i) * time.Microsecond)
				other.Record(time.Millisecond)
			}
		})
	}
	// Cross merges while recording must not deadlock.
	wg.Go(func() {
		for range 20 {
			tmp := NewHistogram()
			tmp.Merge(h)
			tmp.Merge(other)
		}
	})
	wg.Go(func() {
		for range 20 {
			h.Merge(NewHistogram())
			other.Merge(NewHistogram())
		}
	})
	wg.Wait()
	if h.Count() != 16000 || other.Count() != 16000 {
		t.Errorf("counts %d %d, want 16000", h.Count(), other.Count())
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	b.ReportAllocs()
	h := NewHistogram()
	for i := 0; b.Loop(); i++ {
		h.Record(time.Duration(i%100000) * time.Microsecond)
	}
}

func BenchmarkHistogramRecordParallel(b *testing.B) {
	b.ReportAllocs()
	h := NewHistogram()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			h.Record(time.Duration(i%100000) * time.Microsecond)
		}
	})
}

func BenchmarkHistogramMerge(b *testing.B) {
	src := NewHistogram()
	for i := range 100000 {
		src.Record(time.Duration(i*37%5_000_000) * time.Microsecond)
	}
	dst := NewHistogram()
	b.ReportAllocs()
	for b.Loop() {
		dst.Merge(src)
	}
}

func BenchmarkHistogramEncode(b *testing.B) {
	h := NewHistogram()
	for i := range 100000 {
		h.Record(time.Duration(i*37%5_000_000) * time.Microsecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
