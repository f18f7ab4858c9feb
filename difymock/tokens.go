package difymock

import (
	"strconv"
	"time"
)

// faultAfter is how many answer chunks are sent before the mid-stream
// faults (error_event, workflow_failed, no_terminal, malformed_json) and
// which chunk the big-chunk faults replace.
func (c *chat) faultAfter() int { return min(3, c.set.tokens) }

// answer streams the answer chunks (streamTokens). On the workflow_failed fault it ends the
// run with failed and returns false; otherwise it returns whether the stream goes on.
func (c *chat) answer(failed func()) bool {
	ok, stop := c.streamTokens()
	if ok && stop {
		failed()
		return false
	}
	return ok
}

// streamTokens sends the answer chunks on schedule and injects the
// mid-stream faults. ok=false: the request is over (client gone, reset,
// or a fault that ends the stream by itself). stop=true: the caller must
// end the stream after its fault-specific tail (error_event and
// no_terminal need no tail; workflow_failed has one).
func (c *chat) streamTokens() (ok, stop bool) {
	n := c.set.tokens
	at := c.faultAfter()
	bigAt := min(at, n-1)
	for i := 0; i < n; i++ {
		if i == at {
			if fault, ok, stop := c.midStreamFault(false); fault {
				return ok, stop
			}
		}
		if i > 0 {
			c.next = c.next.Add(c.jitter(c.set.tokenDelay))
		}
		if !c.waitUntil(c.next, true) {
			return false, false
		}
		if i == 0 && c.s.now == nil {
			// Real clock only: a test clock ticks per read, and goldens count its reads.
			c.rec.FirstTokenWrite = time.Now().UnixNano()
		}
		var sent bool
		switch {
		case i == bigAt && (c.fault == fBigEvent || c.fault == fOversized || c.fault == fHugeEvent):
			c.fired = true
			size := 1 << 20 // big_event: 1 MiB, under the client's 8 MiB limit
			switch c.fault {
			case fOversized:
				size = 9 << 20
			case fHugeEvent:
				size = 16 << 20
			}
			sent = c.bigChunk(i, size)
		case i == bigAt && c.fault == fInvalidUTF8:
			c.fired = true
			e := c.chunkOpen()
			e.b = append(e.b, "\"bad \xff\xfe bytes\""...)
			c.chunkClose(e, i)
			sent = c.send()
		default:
			e := c.chunkOpen()
			e.str(c.tokenText(i))
			c.chunkClose(e, i)
			sent = c.send()
		}
		if !sent {
			return false, false
		}
		c.sent++
		now := c.s.clock()
		if i == 0 {
			c.firstTok = now
			c.rec.FirstToken = now.UnixNano()
		}
		c.lastTok = now
		c.rec.Tokens = c.sent
		if i == 0 {
			if ok := c.afterFirstToken(); !ok {
				return false, false
			}
		}
	}
	// Fewer chunks than faultAfter cannot happen (at <= n), but keep the fault honest when
	// at == n.
	if fault, ok, stop := c.midStreamFault(true); fault {
		return ok, stop
	}
	return true, false
}

// midStreamFault injects the fault due after faultAfter chunks, if the request has one:
// fault reports whether it had, ok and stop are then streamTokens' results. afterLast: every
// chunk was sent already (Tokens <= faultAfter), and a malformed frame is a bare one.
func (c *chat) midStreamFault(afterLast bool) (fault, ok, stop bool) {
	switch c.fault {
	case fErrorEvent:
		c.fired = true
		c.sendErrorEvent()
	case fWorkflowFailed:
		c.fired = true
		return true, true, true
	case fNoTerminal:
		c.fired = true
	case fMalformedJSON:
		c.fired = true
		if afterLast {
			c.write([]byte(`data: {"event":"message","answer":"broken` + "\n\n"))
			break
		}
		e := c.chunkOpen()
		e.b = append(e.b, `"broken`...)
		e.b = append(e.b, "\n\n"...) // no closing quote or brace: invalid JSON
		c.write(e.b)
		c.recycle()
	default:
		return false, false, false
	}
	return true, false, false
}

// afterFirstToken injects the faults that hit right after the first chunk.
func (c *chat) afterFirstToken() bool {
	switch c.fault {
	case fStall:
		c.fired = true
		// No bytes at all, not even pings, then carry on normally.
		if !c.waitUntil(time.Now().Add(c.set.stall), false) {
			return false
		}
		// Keep the remaining schedule relative to the resume.
		c.next = time.Now()
		if c.set.ping > 0 {
			c.nextPing = c.next.Add(c.set.ping)
		}
	case fReset:
		c.fired = true
		resetConn(c.w)
		return false
	case fResetMidEvent:
		c.fired = true
		frame := []byte(`data: {"event":"` + c.answerEvent() + `","conversation_id":"` + c.conv + `","message_id":"` + c.msg + `","created_at":` + strconv.FormatInt(c.created, 10) + `,"task_id":"` + c.task + `","id":"` + c.msg + `","answer":"cut here"}` + "\n\n")
		c.write(frame[:len(frame)/2])
		resetConn(c.w)
		return false
	case fPartialLine:
		c.fired = true
		if c.write([]byte(`data: {"event":"message"`)) {
			c.waitUntil(time.Now().Add(c.set.stall), false)
		}
		return false
	}
	return true
}

// bigChunk sends answer chunk i with an answer of size filler bytes,
// streamed in pieces so that no big buffer is held.
func (c *chat) bigChunk(i, size int) bool {
	e := c.chunkOpen()
	e.b = append(e.b, '"')
	if _, err := c.w.Write(e.b); err != nil {
		c.broken = true
	}
	// Reuse the frame buffer as a block of filler.
	blk := e.b[:0]
	for range 16 << 10 {
		blk = append(blk, 'x')
	}
	for left := size; left > 0 && !c.broken; {
		n := min(left, len(blk))
		if _, err := c.w.Write(blk[:n]); err != nil {
			c.broken = true
		}
		left -= n
	}
	e.b = append(blk[:0], '"')
	c.chunkClose(e, i)
	return c.send()
}

// sendErrorEvent writes the error_event fault's `error` event: an LLM failure
// mid-stream, as Dify reports an InvokeError (completion_request_error, 400).
func (c *chat) sendErrorEvent() {
	e := c.begin("error", pError)
	e.kstr("code", "completion_request_error").kint("status", 400).kstr("message", "[mock] Rate Limit Error: injected error_event")
	c.send()
}
