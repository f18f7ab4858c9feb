package h1

import (
	"context"
	"net/http/httptrace"
	"time"
)

// getConn returns an idle connection for k that is still open, or dials one.
func (t *Transport) getConn(ctx context.Context, k key, trace *httptrace.ClientTrace) (*conn, error) {
	for {
		c := t.popIdle(k)
		if c == nil {
			break
		}
		if !c.alive() {
			c.close()
			continue
		}
		c.reused = true
		if trace != nil && trace.GotConn != nil {
			trace.GotConn(httptrace.GotConnInfo{Conn: c.nc, Reused: true, WasIdle: true, IdleTime: time.Since(c.idleAt)})
		}
		return c, nil
	}
	c, err := t.dial(ctx, k, trace)
	if err != nil {
		return nil, err
	}
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: c.nc})
	}
	return c, nil
}

// popIdle takes the newest idle connection of a pool that has not expired; expired ones
// found on the way are closed.
func (t *Transport) popIdle(k key) *conn {
	var expired *conn
	t.mu.Lock()
	cs := t.idle[k]
	var c *conn
	if n := len(cs); n > 0 {
		c = cs[n-1]
		cs[n-1] = nil
		t.idle[k] = cs[:n-1]
		t.nIdle--
		if time.Since(c.idleAt) > t.cfg.IdleConnTimeout {
			// The newest is expired, so all are: the sweep is late; close them here.
			expired, c = c, nil
			for _, o := range cs[:n-1] {
				defer o.close()
			}
			clear(cs)
			t.nIdle -= n - 1
			delete(t.idle, k)
		}
	}
	t.mu.Unlock()
	if expired != nil {
		expired.close()
	}
	return c
}

// putIdle returns c to its pool, or closes it when the pool is full.
func (t *Transport) putIdle(c *conn) {
	c.idleAt = time.Now()
	t.mu.Lock()
	if t.cfg.MaxIdleConnsPerHost < 0 || len(t.idle[c.key]) >= t.cfg.MaxIdleConnsPerHost {
		t.mu.Unlock()
		c.close()
		return
	}
	if t.idle == nil {
		t.idle = make(map[key][]*conn)
	}
	t.idle[c.key] = append(t.idle[c.key], c)
	t.nIdle++
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.cfg.IdleConnTimeout, t.expire)
	}
	t.mu.Unlock()
}

// expire closes the connections idle for longer than IdleConnTimeout and re-arms itself
// while any connection is idle. Pools are newest last, so expired ones are a prefix.
func (t *Transport) expire() {
	now := time.Now()
	var dead []*conn
	t.mu.Lock()
	oldest := now
	for k, cs := range t.idle {
		i := 0
		for i < len(cs) && now.Sub(cs[i].idleAt) > t.cfg.IdleConnTimeout {
			i++
		}
		if i > 0 {
			dead = append(dead, cs[:i]...)
			n := copy(cs, cs[i:])
			clear(cs[n:])
			cs = cs[:n]
			t.nIdle -= i
		}
		if len(cs) == 0 {
			delete(t.idle, k)
			continue
		}
		if cs[0].idleAt.Before(oldest) {
			oldest = cs[0].idleAt
		}
	}
	t.sweep = nil
	if t.nIdle > 0 {
		t.sweep = time.AfterFunc(t.cfg.IdleConnTimeout-now.Sub(oldest)+time.Millisecond, t.expire)
	}
	t.mu.Unlock()
	for _, c := range dead {
		c.close()
	}
}
