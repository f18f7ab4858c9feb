package difymock

import (
	"sync"
	"sync/atomic"
)

// Endpoint names used in Truth.
const (
	EndpointChat       = "chat-messages"
	EndpointRetrieve   = "retrieve"
	EndpointParameters = "parameters"
	EndpointOther      = "other" // unknown paths and methods
)

type endpointID uint8

const (
	epChat endpointID = iota
	epRetrieve
	epParameters
	epOther
	numEndpoints
)

func (e endpointID) String() string {
	switch e {
	case epChat:
		return EndpointChat
	case epRetrieve:
		return EndpointRetrieve
	case epParameters:
		return EndpointParameters
	}
	return EndpointOther
}

// Outcome names used in Truth, besides the fault names that are outcomes
// themselves ("error_event", "workflow_failed", "no_terminal",
// "malformed_json", "oversized", "big_event", "huge_event", "stall", "reset",
// "reset_mid_event", "invalid_utf8", "partial_line", "terminal_swap").
const (
	OutcomeOK         = "ok"          // complete, successful response
	OutcomeClientGone = "client_gone" // the client went away before the end (and before any injected fault)
	// HTTP error outcomes are "http_<status>", e.g. "http_400", "http_401",
	// "http_404", "http_405", "http_415", "http_429", "http_500" — both for
	// real validation errors and for the 401/429/500/retrieve_500 faults.
)

// outcome is a compact outcome: values < numFaults are fault outcomes (0 is
// ok), then client_gone, then HTTP statuses.
type outcome uint8

const (
	oOK         outcome = 0
	oClientGone outcome = outcome(numFaults) + iota - 1
	oHTTP400
	oHTTP401
	oHTTP404
	oHTTP405
	oHTTP415
	oHTTP429
	oHTTP500
	numOutcomes
)

func faultOutcome(f faultID) outcome { return outcome(f) }

func httpOutcome(status int) outcome {
	switch status {
	case 400:
		return oHTTP400
	case 401:
		return oHTTP401
	case 404:
		return oHTTP404
	case 405:
		return oHTTP405
	case 415:
		return oHTTP415
	case 429:
		return oHTTP429
	}
	return oHTTP500
}

func (o outcome) String() string {
	switch {
	case o == oOK:
		return OutcomeOK
	case o < outcome(numFaults):
		return faultID(o).String()
	case o == oClientGone:
		return OutcomeClientGone
	case o == oHTTP400:
		return "http_400"
	case o == oHTTP401:
		return "http_401"
	case o == oHTTP404:
		return "http_404"
	case o == oHTTP405:
		return "http_405"
	case o == oHTTP415:
		return "http_415"
	case o == oHTTP429:
		return "http_429"
	}
	return "http_500"
}

// Truth is the mock's own account of what it served, for checking a client
// against. Times are unix nanoseconds (0 = not reached).
type Truth struct {
	// Counts maps endpoint ("chat-messages", "retrieve", "parameters",
	// "other") → outcome → requests. Only non-zero counts are present.
	Counts map[string]map[string]int64 `json:"counts"`
	// InFlight is the number of requests being handled right now.
	InFlight int64 `json:"in_flight"`
	// Records are the most recent finished requests, oldest first (at most
	// Config.MaxRecords).
	Records []Record `json:"records,omitempty"`
	// RecordsDropped counts finished requests that fell out of the ring.
	RecordsDropped int64 `json:"records_dropped"`
}

// Record is the truth about one finished request.
type Record struct {
	MessageID  string `json:"message_id,omitempty"` // chat only
	User       string `json:"user,omitempty"`
	App        string `json:"app,omitempty"` // "simple", "complex", "agent", "dataset" or ""
	Endpoint   string `json:"endpoint"`
	Mode       string `json:"mode,omitempty"`  // "streaming" or "blocking" (chat only)
	Fault      string `json:"fault,omitempty"` // the injected fault, if any
	Outcome    string `json:"outcome"`
	Tokens     int    `json:"tokens"`      // answer chunks sent (chat)
	Received   int64  `json:"received"`    // when the handler started
	FirstToken int64  `json:"first_token"` // after Write+Flush of the first answer chunk returned
	Terminal   int64  `json:"terminal"`    // after Write+Flush of the terminal event (or blocking body) returned
}

// truth holds exact concurrent counts (atomics, no lock) and a ring of
// records behind a mutex held only for a struct copy.
type truth struct {
	counts   [numEndpoints][numOutcomes]atomic.Int64
	inFlight atomic.Int64

	mu      sync.Mutex
	max     int
	ring    []Record
	next    int   // next slot when the ring is full
	dropped int64 // records overwritten
}

func (t *truth) add(ep endpointID, o outcome, rec *Record) {
	t.counts[ep][o].Add(1)
	if t.max <= 0 || rec == nil {
		return
	}
	t.mu.Lock()
	if len(t.ring) < t.max {
		t.ring = append(t.ring, *rec)
	} else {
		t.ring[t.next] = *rec
		t.next = (t.next + 1) % t.max
		t.dropped++
	}
	t.mu.Unlock()
}

func (t *truth) snapshot(withRecords bool) Truth {
	out := Truth{Counts: map[string]map[string]int64{}, InFlight: t.inFlight.Load()}
	for ep := range numEndpoints {
		for o := range numOutcomes {
			if n := t.counts[ep][o].Load(); n != 0 {
				m := out.Counts[ep.String()]
				if m == nil {
					m = map[string]int64{}
					out.Counts[ep.String()] = m
				}
				m[o.String()] = n
			}
		}
	}
	t.mu.Lock()
	out.RecordsDropped = t.dropped
	if withRecords {
		out.Records = make([]Record, 0, len(t.ring))
		out.Records = append(out.Records, t.ring[t.next:]...)
		out.Records = append(out.Records, t.ring[:t.next]...)
	}
	t.mu.Unlock()
	return out
}

func (t *truth) reset() {
	for ep := range numEndpoints {
		for o := range numOutcomes {
			t.counts[ep][o].Store(0)
		}
	}
	t.mu.Lock()
	t.ring, t.next, t.dropped = nil, 0, 0
	t.mu.Unlock()
}
