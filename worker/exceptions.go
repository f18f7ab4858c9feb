package worker

import (
	"sync"
)

// exceptionLimiter rate-limits exception messages per stats interval so a
// user that panics in a tight loop cannot flood the master:
//   - the first occurrence of a traceback in an interval is sent at once
//     (if the interval budget allows);
//   - repeats are counted and, at the interval's end, sent as that many
//     identical messages (the master counts one per message, so its Count
//     column stays exact) within the remaining budget;
//   - whatever exceeds the budget is dropped and reported in the log.
//
// Safe for concurrent use; user goroutines call record directly.
type exceptionLimiter struct {
	mu      sync.Mutex
	budget  int // messages per interval
	sent    int // messages sent (or queued) this interval
	pending map[string]*pendingException
	order   []string
	dropped int
}

type pendingException struct {
	msg, tb string
	repeats int
}

func newExceptionLimiter(budget int) *exceptionLimiter {
	return &exceptionLimiter{budget: budget, pending: map[string]*pendingException{}}
}

// record notes one exception and reports whether it should be sent now.
func (l *exceptionLimiter) record(msg, tb string) (sendNow bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.pending[tb]; ok {
		p.repeats++
		return false
	}
	l.pending[tb] = &pendingException{msg: msg, tb: tb}
	l.order = append(l.order, tb)
	if l.sent >= l.budget {
		l.pending[tb].repeats++ // send it at flush if budget frees up; it won't, so it is counted as dropped
		return false
	}
	l.sent++
	return true
}

// requeue puts back an immediate send that could not be delivered to the
// protocol loop; it will go out at flush.
func (l *exceptionLimiter) requeue(tb string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.pending[tb]; ok {
		p.repeats++
		l.sent--
	}
}

// flush ends the interval: it returns the repeats to send now (each
// element one message) and how many were dropped over budget.
func (l *exceptionLimiter) flush() (out []exceptionData, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tb := range l.order {
		p := l.pending[tb]
		for range p.repeats {
			if l.sent >= l.budget {
				l.dropped++
				continue
			}
			l.sent++
			out = append(out, exceptionData{Msg: p.msg, Traceback: p.tb})
		}
	}
	dropped = l.dropped
	l.pending = map[string]*pendingException{}
	l.order = l.order[:0]
	l.sent = 0
	l.dropped = 0
	return out, dropped
}
