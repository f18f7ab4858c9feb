package tasks

import (
	mrand "math/rand/v2"
	"time"

	"github.com/difyload/difyload/workload"
)

// waiter is a Locust wait_time function for one user.
type waiter interface {
	next(rng *mrand.Rand, taskStart time.Time) time.Duration
}

func newWaiter(w workload.Wait) waiter {
	switch w.Kind {
	case workload.WaitBetween:
		return between{min: w.Min, max: w.Max}
	case workload.WaitConstantPacing:
		return pacing{every: w.Min}
	case workload.WaitConstantThroughput:
		return pacing{every: time.Duration(float64(time.Second) / w.Rate)}
	case workload.WaitPoisson:
		return poisson{rate: w.Rate}
	default:
		return constant{d: w.Min}
	}
}

// between is Locust's between(min, max): uniform in [min, max].
type between struct{ min, max time.Duration }

func (b between) next(rng *mrand.Rand, _ time.Time) time.Duration {
	if b.max <= b.min {
		return b.min
	}
	return b.min + time.Duration(rng.Int64N(int64(b.max-b.min)+1))
}

// constant is Locust's constant(d).
type constant struct{ d time.Duration }

func (c constant) next(*mrand.Rand, time.Time) time.Duration { return c.d }

// pacing is Locust's constant_pacing(every) (and constant_throughput(rate) = pacing
// 1/rate): the wait that makes a task start every `every`, measured from the task's
// start; 0 when the task took longer.
type pacing struct{ every time.Duration }

func (p pacing) next(_ *mrand.Rand, taskStart time.Time) time.Duration {
	if taskStart.IsZero() {
		return p.every
	}
	return max(0, p.every-time.Since(taskStart))
}

// poisson is Locust's poisson(rate): exponential waits of mean 1/rate seconds.
type poisson struct{ rate float64 }

func (p poisson) next(rng *mrand.Rand, _ time.Time) time.Duration {
	return time.Duration(rng.ExpFloat64() / p.rate * float64(time.Second))
}
