package difymock

import (
	"net/http"
	"time"
)

// serveStream writes a streaming response: the relay's first ping and job queue (1.13
// relayed runs), then the run of the app's mode, then the stop tail or the outcome.
func (c *chat) serveStream() {
	defer c.stop()
	h := c.w.Header()
	h["Content-Type"] = []string{"text/event-stream; charset=utf-8"}
	if fe, ok := c.w.(interface{ FlushError() error }); ok {
		c.flush = fe.FlushError
	} else if f, ok := c.w.(http.Flusher); ok {
		c.flush = func() error { f.Flush(); return nil }
	} else {
		c.flush = func() error { return nil }
	}
	c.start = c.recv
	c.w.WriteHeader(http.StatusOK)
	if c.relay {
		// 1.13 relays the run from a job worker: one ping as soon as the subscription is
		// live, then nothing until a worker runs the job (services/app_generate_service.py
		// :146-228, core/app/apps/streaming_utils.py:13-70).
		if !c.write([]byte("event: ping\n\n")) {
			c.settle(false)
			return
		}
		if c.setupErr {
			c.holdSilent()
			return
		}
		if !c.queue() {
			c.settle(false)
			return
		}
		defer c.releaseJob()
	}
	if c.set.ping > 0 {
		// Pings come when the run time crosses a multiple of the interval
		// (core/app/apps/base_app_queue_manager.py:55-84): from the run's start.
		c.nextPing = c.start.Add(c.set.ping)
	}
	c.next = c.start.Add(c.jitter(c.set.ttft))
	// From here the task can be stopped (POST …/{task_id}/stop by the same user).
	c.stopCh = c.s.tasks.add(c.task, c.a.kind, c.user).ch
	defer c.s.tasks.remove(c.task)

	var done bool
	switch {
	case c.a.kind == appHuman:
		c.streamHumanInput() // sets its own outcome
		if c.stoppedLive() {
			c.stopTail()
		}
		return
	case c.a.wire == wireWorkflow:
		done = c.streamWorkflowApp()
	case c.a.nodes:
		done = c.streamWorkflow()
	default:
		done = c.streamMessages()
	}
	if c.stoppedLive() {
		c.stopTail()
		return
	}
	c.settle(done)
}

// stoppedLive: the task was stopped and its client is still there for the stop tail.
func (c *chat) stoppedLive() bool { return c.stopped && !c.broken && c.r.Context().Err() == nil }

// runTime is a run's own duration: TTFT, then one token delay per further chunk.
func (c *chat) runTime() time.Duration {
	return c.set.ttft + time.Duration(max(c.set.tokens-1, 0))*c.set.tokenDelay
}

// queue waits (in silence) for a job worker. It returns false when the client left first;
// the job then still runs when its turn comes (an orphan job).
func (c *chat) queue() bool {
	from := time.Now()
	ok := c.s.jobs.acquire(c.r.Context(), c.runTime())
	c.rec.QueueWait = time.Since(from).Nanoseconds()
	if !ok {
		return false
	}
	c.holding = true
	c.start = time.Now()
	c.rec.RunStart = c.s.clock().UnixNano()
	return true
}

// releaseJob frees the job worker when the run is over; a run whose client left keeps its
// worker until its own end, as a Celery job does.
func (c *chat) releaseJob() {
	if !c.holding {
		return
	}
	c.holding = false
	if c.broken || c.r.Context().Err() != nil {
		c.s.jobs.holdFor(time.Until(c.start.Add(c.runTime())))
		return
	}
	c.s.jobs.release()
}

// silentHold bounds how long a relayed run that failed its setup keeps the body open.
const silentHold = 20 * time.Minute

// holdSilent keeps a relayed stream open with nothing more to say: the job failed its setup
// and published nothing.
func (c *chat) holdSilent() {
	c.waitUntil(time.Now().Add(silentHold), false)
	c.out = oSetupSilent
}

// settle turns how the stream went into the outcome.
func (c *chat) settle(completed bool) {
	switch {
	case c.fired && failureFault(c.fault):
		c.out = faultOutcome(c.fault)
	case !completed || c.broken || c.r.Context().Err() != nil:
		c.out = oClientGone
	case c.fault != fNone:
		c.out = faultOutcome(c.fault)
	default:
		c.out = oOK
	}
}

// failureFault: faults after which the client must fail (so the outcome is
// the fault even if the client then disconnects).
func failureFault(f faultID) bool {
	switch f {
	case fBigEvent, fTerminalSwap, fInvalidUTF8, fNone:
		return false
	}
	return true
}

// waitUntil sleeps until t (real time) or ctx end, sending `event: ping`
// frames when they fall due (if pings). It returns false if the request
// is over.
func (c *chat) waitUntil(t time.Time, pings bool) bool {
	ctx := c.r.Context()
	for {
		if c.broken || c.stopped || ctx.Err() != nil {
			return false
		}
		select {
		case <-c.stopCh:
			c.stopped = true
			return false
		default:
		}
		target, ping := t, false
		if pings && !c.nextPing.IsZero() && c.nextPing.Before(t) {
			target, ping = c.nextPing, true
		}
		if d := time.Until(target); d > 0 {
			if c.timer == nil {
				c.timer = time.NewTimer(d)
			} else {
				c.timer.Reset(d)
			}
			select {
			case <-ctx.Done():
				c.timer.Stop()
				return false
			case <-c.stopCh:
				c.timer.Stop()
				c.stopped = true
				return false
			case <-c.timer.C:
			}
		}
		if !ping {
			return true
		}
		if !c.write([]byte("event: ping\n\n")) {
			return false
		}
		c.nextPing = c.nextPing.Add(c.set.ping)
	}
}

// stop frees the request's timer.
func (c *chat) stop() {
	if c.timer != nil {
		c.timer.Stop()
	}
}
