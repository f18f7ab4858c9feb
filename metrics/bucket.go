package metrics

import (
	"math"
	"math/big"
)

// BucketMS returns the key of Locust's response_times histogram for a
// response time of ms milliseconds, exactly as Python computes it:
//
//	ms < 100    round(ms)
//	ms < 1000   round(ms, -1)
//	ms < 10000  round(ms, -2)
//	otherwise   round(ms, -3)
//
// Python's round is half-to-even on the exact binary value of the float
// (round(x, -n) is correctly rounded, not x/10**n rounded), so 12.5→12,
// 105→100, 145→140, 147→150, 155→160, 1250→1200, 3432→3400, 58760→59000 and
// 99.5→100. The result is the integer Locust 2.46 returns; Locust 2.12.1 keeps
// a float key (150.0) for ms ≥ 100, which a Python master merges with the
// integer key 150, so both versions see identical buckets.
//
// Inputs Python could not bucket are mapped to something harmless: NaN → 0,
// +Inf and values beyond int64 → math.MaxInt64, -Inf → math.MinInt64.
func BucketMS(ms float64) int64 {
	switch {
	case math.IsNaN(ms):
		return 0
	case ms < 100:
		return clampInt64(math.RoundToEven(ms))
	case ms < 1000:
		return roundNeg(ms, 10)
	case ms < 10000:
		return roundNeg(ms, 100)
	default:
		return roundNeg(ms, 1000)
	}
}

// exactIntLimit is 2**52: below it every integer (and that integer plus p) is
// exactly a float64, which makes the fast path of roundNeg exact.
const exactIntLimit = 1 << 52

// roundNeg is Python's round(x, -n) for p = 10**n and x ≥ 0, converted to
// int64. Below 2**52, k*p is an exactly representable integer and x-k*p is
// exact too (it is a multiple of x's ulp no larger than x), so the remainder r
// is exact once the estimate k = floor(x/p) has been corrected by ±1; the
// half-to-even decision is then made on exact values.
func roundNeg(x, p float64) int64 {
	if x >= exactIntLimit {
		return roundNegBig(x, p)
	}
	k := math.Floor(x / p)
	r := x - k*p
	switch {
	case r < 0:
		k--
		r += p
	case r >= p:
		k++
		r -= p
	}
	half := p / 2
	if r > half || (r == half && math.Mod(k, 2) != 0) {
		k++
	}
	return int64(k) * int64(p)
}

// roundNegBig handles huge values with exact rational arithmetic. It is only
// reachable from BucketMS for values far beyond any time.Duration.
func roundNegBig(x, p float64) int64 {
	if math.IsInf(x, 0) {
		return clampInt64(x)
	}
	r := new(big.Rat).SetFloat64(x)
	r.Quo(r, new(big.Rat).SetFloat64(p))
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	// Compare 2*m with the denominator for half-to-even.
	m.Lsh(m, 1)
	switch c := m.Cmp(r.Denom()); {
	case c > 0, c == 0 && q.Bit(0) == 1:
		q.Add(q, big.NewInt(1))
	}
	q.Mul(q, big.NewInt(int64(p)))
	// Python converts the correctly rounded decimal back to a float before
	// int() sees it.
	f, _ := new(big.Float).SetInt(q).Float64()
	return clampInt64(f)
}

func clampInt64(f float64) int64 {
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	default:
		return int64(f)
	}
}
