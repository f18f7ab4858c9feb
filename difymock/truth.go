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
	EndpointCompletion = "completion-messages"
	EndpointWorkflow   = "workflows-run"
	EndpointStop       = "stop" // POST /v1/chat-messages/{task_id}/stop, /v1/workflows/tasks/{task_id}/stop
)

type endpointID uint8

const (
	epChat endpointID = iota
	epRetrieve
	epParameters
	epOther
	epCompletion
	epWorkflow
	epStop
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
	case epCompletion:
		return EndpointCompletion
	case epWorkflow:
		return EndpointWorkflow
	case epStop:
		return EndpointStop
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
	// OutcomeSetupSilent: a relayed run (1.13) whose setup failed inside the job (a missing
	// required input, an empty query, an unknown conversation): 200, one ping, silence.
	OutcomeSetupSilent = "setup_silent"
	// OutcomePaused: a human-input chatflow paused (human_input_required, workflow_paused).
	OutcomePaused = "paused"
	// OutcomeConcurrencyLimit: rejected by the app's concurrency limit
	// (Config.MaxActiveRequests): 400 invalid_param "Too many requests. …".
	OutcomeConcurrencyLimit = "concurrency_limit"
	// OutcomeStopped: a stream whose task was stopped through a stop endpoint (its
	// stopped terminal sent). A stop request itself counts "ok" when it stopped a running
	// task and OutcomeStopIgnored when it did nothing (unknown or finished task, another
	// user's task), which Dify answers with the same {"result": "success"}.
	OutcomeStopped     = "stopped"
	OutcomeStopIgnored = "stop_ignored"
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
	oSetupSilent
	oPaused
	oConcurrency
	oStopped
	oStopIgnored
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
	case o == oSetupSilent:
		return OutcomeSetupSilent
	case o == oPaused:
		return OutcomePaused
	case o == oConcurrency:
		return OutcomeConcurrencyLimit
	case o == oStopped:
		return OutcomeStopped
	case o == oStopIgnored:
		return OutcomeStopIgnored
	}
	return "http_500"
}

// Truth is the mock's own account of what it served, for checking a client
// against. Times are unix nanoseconds (0 = not reached).
type Truth struct {
	// Counts maps endpoint ("chat-messages", "completion-messages", "workflows-run",
	// "retrieve", "parameters", "stop", "other") → outcome → requests. Only non-zero counts are present.
	Counts map[string]map[string]int64 `json:"counts"`
	// InFlight is the number of requests being handled right now.
	InFlight int64 `json:"in_flight"`
	// Records are the most recent finished requests, oldest first (at most
	// Config.MaxRecords).
	Records []Record `json:"records,omitempty"`
	// RecordsDropped counts finished requests that fell out of the ring.
	RecordsDropped int64 `json:"records_dropped"`
	// Apps maps an app name ("simple_chatflow", "complex_chatflow", "agent", "chat",
	// "completion", "workflow", "required_chatflow", "human_input_chatflow") to its
	// requests (every endpoint, /v1/parameters included) and outcomes. Only apps with
	// requests are present.
	Apps map[string]AppTruth `json:"apps"`
	// Conversations maps every conversation_id the mock issued (and still remembers, see
	// Config.MaxConversations) to its app and turns (omitted with ?conversations=0).
	Conversations map[string]Conversation `json:"conversations,omitempty"`
	// ConversationsDropped counts conversations forgotten past Config.MaxConversations.
	ConversationsDropped int64 `json:"conversations_dropped"`
	// DifyVersion is the Dify release the mock speaks (X-Version).
	DifyVersion string `json:"dify_version"`
	// JobWorkers is Config.JobWorkers (0: unlimited); JobsRunning and JobsQueued are the
	// job workers busy and the relayed runs waiting for one right now; OrphanJobs counts
	// queued runs whose client had left when a worker took them (they ran anyway).
	JobWorkers  int   `json:"job_workers"`
	JobsRunning int   `json:"jobs_running"`
	JobsQueued  int   `json:"jobs_queued"`
	OrphanJobs  int64 `json:"orphan_jobs"`
	// APISlots is Config.APISlots (0: unlimited); APIInUse and APIQueued are the slots in
	// use and the requests waiting for one.
	APISlots  int `json:"api_slots"`
	APIInUse  int `json:"api_in_use"`
	APIQueued int `json:"api_queued"`
}

// AppTruth is one app's share of the counts.
type AppTruth struct {
	Requests int64            `json:"requests"`
	Outcomes map[string]int64 `json:"outcomes"`
	// Files counts the `files` entries the app's requests carried.
	Files int64 `json:"files"`
}

// Record is the truth about one finished request.
type Record struct {
	MessageID  string `json:"message_id,omitempty"` // chat only
	User       string `json:"user,omitempty"`
	App        string `json:"app,omitempty"` // an app name (Truth.Apps), "dataset" or ""
	Endpoint   string `json:"endpoint"`
	Mode       string `json:"mode,omitempty"`  // "streaming" or "blocking" (chat only)
	Fault      string `json:"fault,omitempty"` // the injected fault, if any
	Outcome    string `json:"outcome"`
	Tokens     int    `json:"tokens"`      // answer chunks sent (chat)
	Received   int64  `json:"received"`    // when the handler started
	FirstToken int64  `json:"first_token"` // after Write+Flush of the first answer chunk returned
	// FirstTokenWrite is the clock read just before the first answer chunk was written: its
	// bytes cannot have arrived before it. FirstToken can lag the arrival when the mock is
	// descheduled after the write (a loaded machine), so causality checks use this one. It is
	// a real-clock reading, 0 when the server runs on a test clock (Config's clock hook).
	FirstTokenWrite int64 `json:"first_token_write"`
	Terminal        int64 `json:"terminal"` // after Write+Flush of the terminal event (or blocking body) returned
	// ConversationID is the conversation of a chat-messages request (issued or reused);
	// Turn is its turn number (1 = the first).
	ConversationID string `json:"conversation_id,omitempty"`
	Turn           int64  `json:"turn,omitempty"`
	// Files is the number of `files` entries in the request.
	Files int `json:"files,omitempty"`
	// QueueWait is how long a relayed run waited for a job worker; APIWait how long the
	// request waited for an API slot (ns).
	QueueWait int64 `json:"queue_wait_ns,omitempty"`
	APIWait   int64 `json:"api_wait_ns,omitempty"`
	// RunStart is when the run started (a job worker or the API process took it), unix ns.
	RunStart int64 `json:"run_start,omitempty"`
}

// truth holds exact concurrent counts (atomics, no lock) and a ring of
// records behind a mutex held only for a struct copy.
type truth struct {
	counts   [numEndpoints][numOutcomes]atomic.Int64
	apps     [numApps][numOutcomes]atomic.Int64
	files    [numApps]atomic.Int64
	inFlight atomic.Int64

	mu      sync.Mutex
	max     int
	ring    []Record
	next    int   // next slot when the ring is full
	dropped int64 // records overwritten
}

// add counts a finished request; a is its app (numApps: none).
func (t *truth) add(ep endpointID, a appKind, o outcome, rec *Record) {
	t.counts[ep][o].Add(1)
	if a < numApps {
		t.apps[a][o].Add(1)
		if rec != nil && rec.Files > 0 {
			t.files[a].Add(int64(rec.Files))
		}
	}
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
	out := Truth{Counts: map[string]map[string]int64{}, InFlight: t.inFlight.Load(), Apps: map[string]AppTruth{}}
	for a := range numApps {
		at := AppTruth{Outcomes: map[string]int64{}, Files: t.files[a].Load()}
		for o := range numOutcomes {
			if n := t.apps[a][o].Load(); n != 0 {
				at.Outcomes[o.String()] = n
				at.Requests += n
			}
		}
		if at.Requests > 0 {
			out.Apps[a.name()] = at
		}
	}
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
	for a := range numApps {
		for o := range numOutcomes {
			t.apps[a][o].Store(0)
		}
		t.files[a].Store(0)
	}
	t.mu.Lock()
	t.ring, t.next, t.dropped = nil, 0, 0
	t.mu.Unlock()
}
