package difymock

import (
	"context"
	"sync"
	"time"
)

// pool is a FIFO pool of n slots: Dify's job workers (CELERY_WORKER_AMOUNT) or the API
// process's connections. n <= 0 means unlimited. A waiter whose client leaves is not removed
// when orphans is set: like a Celery task that was already queued, it still takes a slot when
// its turn comes and holds it for its run time (an orphan job).
type pool struct {
	n       int
	orphans bool

	mu      sync.Mutex
	running int
	queue   []*waiter
	orphan  int64 // orphan jobs started
}

type waiter struct {
	ready chan struct{} // closed when the slot is handed over
	ghost time.Duration // > 0: the client left; hold the slot this long, then release
}

func newPool(n int, orphans bool) *pool { return &pool{n: n, orphans: orphans} }

// acquire takes a slot, waiting in FIFO order. It returns false when ctx ends first; then, if
// the pool keeps orphans, the waiter stays queued and will hold a slot for hold once its turn
// comes.
func (p *pool) acquire(ctx context.Context, hold time.Duration) bool {
	if p.n <= 0 {
		return true
	}
	p.mu.Lock()
	if p.running < p.n && len(p.queue) == 0 {
		p.running++
		p.mu.Unlock()
		return true
	}
	w := &waiter{ready: make(chan struct{})}
	p.queue = append(p.queue, w)
	p.mu.Unlock()
	select {
	case <-w.ready:
		return true
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-w.ready:
		// The slot was handed over just as ctx ended: the caller owns it.
		return true
	default:
	}
	if p.orphans && hold > 0 {
		w.ghost = hold
		return false
	}
	for i, q := range p.queue {
		if q == w {
			p.queue = append(p.queue[:i], p.queue[i+1:]...)
			break
		}
	}
	return false
}

// release frees a slot: the first waiter gets it, else the running count drops.
func (p *pool) release() {
	if p.n <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) > 0 {
		w := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		if w.ghost > 0 {
			// An orphan job: it runs for its own time with nobody listening.
			p.orphan++
			time.AfterFunc(w.ghost, p.release)
			return
		}
		close(w.ready)
		return
	}
	p.running--
}

// holdFor keeps an acquired slot for d more (a run whose client left keeps its job worker
// until the run ends), then releases it.
func (p *pool) holdFor(d time.Duration) {
	if p.n <= 0 {
		return
	}
	if d <= 0 {
		p.release()
		return
	}
	time.AfterFunc(d, p.release)
}

// stats returns the slots in use, the waiters queued and the orphan jobs started.
func (p *pool) stats() (running, queued int, orphans int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running, len(p.queue), p.orphan
}
