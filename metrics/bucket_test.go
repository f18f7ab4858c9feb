package metrics

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestBucketMS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ms   float64
		want int64
	}{
		{0, 0}, {0.4, 0}, {0.5, 0}, {1.5, 2}, {2.5, 2}, {12.5, 12}, {13.5, 14}, {99.4, 99}, {99.5, 100},
		{99.99, 100}, {100, 100}, {104.99, 100}, {105, 100}, {105.0001, 110}, {115, 120}, {145, 140},
		{147, 150}, {155, 160}, {994.9, 990}, {995, 1000}, {999.9, 1000}, {1000, 1000}, {1050, 1000},
		{1150, 1200}, {1250, 1200}, {3432, 3400}, {9950, 10000}, {9999, 10000}, {10000, 10000},
		{10500, 10000}, {11500, 12000}, {58760, 59000}, {-0.5, 0}, {-1.5, -2}, {-3, -3},
		{math.NaN(), 0}, {math.Inf(1), math.MaxInt64}, {math.Inf(-1), math.MinInt64},
		{1e30, math.MaxInt64}, {4503599627370497, 4503599627370000}, {4503599627370500, 4503599627370000},
		{4503599627371500, 4503599627372000},
	}
	for _, tc := range tests {
		if got := BucketMS(tc.ms); got != tc.want {
			t.Errorf("BucketMS(%v) = %d, want %d", tc.ms, got, tc.want)
		}
	}
}

// bucketInputs returns the values the Python oracle is asked about: ties at
// every decade, values one ulp around them, durations converted the way
// Stats converts them, and random floats.
func bucketInputs() []float64 {
	var xs []float64
	add := func(f float64) { xs = append(xs, f, math.Nextafter(f, math.Inf(1)), math.Nextafter(f, math.Inf(-1))) }
	for i := 0; i < 100; i++ {
		add(float64(i) + 0.5)
	}
	for i := 100; i < 1000; i += 5 {
		add(float64(i))
	}
	for i := 1000; i < 10000; i += 50 {
		add(float64(i))
	}
	for i := 10000; i < 200000; i += 500 {
		add(float64(i))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		d := time.Duration(r.Int64N(int64(120 * time.Second)))
		xs = append(xs, durationMS(d), r.Float64()*100, r.Float64()*1000, r.Float64()*1e4, r.Float64()*1e6)
	}
	for _, f := range []float64{0.1 * 3 * 1000, 144.99999999999997, 1e15 + 500, 3e15 + 1500, 1 << 52, 1<<52 + 1500, 1<<53 + 3000, 1e17 + 500, 1.2345e18} {
		add(f)
	}
	return xs
}

// TestBucketMSPython compares BucketMS with Locust 2.46's own
// bucket_response_time, and checks that 2.12.1's inline rule (round without
// int()) gives numerically equal keys, i.e. the same merged dict entries.
func TestBucketMSPython(t *testing.T) {
	t.Parallel()
	dir := locustStats(t)
	xs := bucketInputs()
	var in strings.Builder
	for _, x := range xs {
		in.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
		in.WriteByte('\n')
	}
	const script = `
import sys, json
from locust.stats import bucket_response_time
def old(t):  # locust 2.12.1 StatsEntry._log_response_time
    if t < 100:
        return round(t)
    elif t < 1000:
        return round(t, -1)
    elif t < 10000:
        return round(t, -2)
    return round(t, -3)
out = []
for line in sys.stdin:
    t = float(line)
    new = bucket_response_time(t)
    if old(t) != new or not isinstance(new, int):
        raise SystemExit("2.12.1 and 2.46 disagree on %r: %r vs %r" % (t, old(t), new))
    out.append(new)
print(json.dumps(out))
`
	var want []int64
	if err := json.Unmarshal(python(t, dir, script, []byte(in.String())), &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(xs) {
		t.Fatalf("oracle returned %d values for %d inputs", len(want), len(xs))
	}
	for i, x := range xs {
		if got := BucketMS(x); got != want[i] {
			t.Errorf("BucketMS(%v) = %d, Python %d", x, got, want[i])
		}
	}
}

func BenchmarkBucketMS(b *testing.B) {
	b.ReportAllocs()
	var sink int64
	for i := 0; b.Loop(); i++ {
		sink += BucketMS(float64(i%20000) + 0.5)
	}
	_ = sink
}
