package difymock

import (
	"cmp"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Default keys and ids. They work out of the box with every Server.
const (
	// SimpleChatKey selects the simple chatflow (Start → Answer, docs/dify-wire.md, "Simple chatflow").
	SimpleChatKey = "app-mocksimplechatflow000000"
	// ComplexChatKey selects the complex chatflow (Start → IF/ELSE → Tool →
	// Knowledge Retrieval → LLM → Answer, docs/dify-wire.md, "Complex chatflow").
	ComplexChatKey = "app-mockcomplexchatflow00000"
	// AgentChatKey selects the agent-chat app (function calling, docs/dify-wire.md, "Agent app"). It
	// streams only: blocking requests get 400 invalid_param.
	AgentChatKey = "app-mockagentchatapp00000000"
	// DatasetKey is the knowledge (dataset) API key; it works only on
	// /v1/datasets/{id}/retrieve.
	DatasetKey = "dataset-mockdatasetkey0000000000"
	// DefaultDatasetID is the dataset id that always exists.
	DefaultDatasetID = "6f1c2e0a-3b7d-4c5e-9a8f-0d1e2f3a4b5c"
)

// Fault names, exactly as accepted by Config.Faults, ParseFaults and the
// X-Mock-Fault header. See the package documentation for what each does and
// what a client should report.
const (
	Fault401            = "401"
	Fault429            = "429"
	Fault500            = "500"
	FaultErrorEvent     = "error_event"
	FaultWorkflowFailed = "workflow_failed"
	FaultNoTerminal     = "no_terminal"
	FaultMalformedJSON  = "malformed_json"
	FaultOversized      = "oversized"
	FaultBigEvent       = "big_event"
	FaultHugeEvent      = "huge_event"
	FaultStall          = "stall"
	FaultReset          = "reset"
	FaultResetMidEvent  = "reset_mid_event"
	FaultInvalidUTF8    = "invalid_utf8"
	FaultPartialLine    = "partial_line"
	FaultTerminalSwap   = "terminal_swap"
	FaultRetrieve500    = "retrieve_500"
)

// FaultNames lists every fault name in a stable order.
func FaultNames() []string {
	return []string{
		Fault401, Fault429, Fault500, FaultErrorEvent, FaultWorkflowFailed, FaultNoTerminal,
		FaultMalformedJSON, FaultOversized, FaultBigEvent, FaultHugeEvent, FaultStall,
		FaultReset, FaultResetMidEvent, FaultInvalidUTF8, FaultPartialLine, FaultTerminalSwap,
		FaultRetrieve500,
	}
}

// faultID is the compact form of a fault name; 0 is "no fault".
type faultID uint8

const (
	fNone faultID = iota
	f401
	f429
	f500
	fErrorEvent
	fWorkflowFailed
	fNoTerminal
	fMalformedJSON
	fOversized
	fBigEvent
	fHugeEvent
	fStall
	fReset
	fResetMidEvent
	fInvalidUTF8
	fPartialLine
	fTerminalSwap
	fRetrieve500
	numFaults
)

func faultByName(name string) (faultID, bool) {
	for i, n := range FaultNames() {
		if n == name {
			return faultID(i + 1), true
		}
	}
	return fNone, false
}

func (f faultID) String() string {
	if f == fNone || f >= numFaults {
		return ""
	}
	return FaultNames()[f-1]
}

// Defaults applied to zero Config fields.
const (
	DefaultTTFT             = 200 * time.Millisecond
	DefaultTokenDelay       = 20 * time.Millisecond
	DefaultPingInterval     = 10 * time.Second
	DefaultRetrievalLatency = 50 * time.Millisecond
	DefaultTokens           = 20
	DefaultMaxRecords       = 100000
	// DefaultStall is how long "stall" and "partial_line" hold the stream.
	// It is longer than the client's 30 s idle timeout on purpose: a stall of
	// exactly 30 s would race the client's timer.
	DefaultStall = 35 * time.Second
)

// Config tunes a Server. The zero value is a sane default. Durations are
// per request; a negative TokenDelay, TTFT or RetrievalLatency means zero,
// a negative PingInterval disables keep-alive pings.
type Config struct {
	TTFT             time.Duration // time from request to the first answer token; 0 → 200ms
	TokenDelay       time.Duration // delay between answer chunks; 0 → 20ms
	Jitter           time.Duration // uniform ±Jitter added to TTFT, each token delay and retrieval latency; 0 → none
	PingInterval     time.Duration // `event: ping` every PingInterval of run time; 0 → 10s, <0 → never
	RetrievalLatency time.Duration // time before a retrieve response; 0 → 50ms
	Tokens           int           // answer chunks per reply; 0 → 20
	// Faults maps a fault name to its probability per request (server-wide
	// default; X-Mock-Fault overrides it). Probabilities must sum to ≤ 1.
	Faults map[string]float64
	// MaxRecords is the size of the per-request truth ring; 0 → 100000,
	// <0 → no records (counts only).
	MaxRecords int
	// Stall is how long the "stall" and "partial_line" faults hold the
	// stream; 0 → DefaultStall (35s). X-Mock-Stall overrides it per request.
	Stall time.Duration
	// DatasetIDs are extra dataset ids accepted by retrieve, in addition to
	// DefaultDatasetID. Any other id gets 404 not_found "Dataset not found.".
	DatasetIDs []string
	// DifyVersion selects the wire behaviour of a Dify release: "1.9" … "1.12" stream
	// inline, "1.13.0" and later relay chatflow and workflow runs through job workers (see
	// doc.go, "Dify versions"). "" → DefaultDifyVersion (the newest 1.13.x).
	DifyVersion string
	// JobWorkers is the number of job workers (Dify's CELERY_WORKER_AMOUNT) that run relayed
	// streaming runs (chatflow and workflow apps on 1.13): a relayed run sends its first
	// ping, then waits in a FIFO queue for a free worker, in silence. 0 → unlimited (no
	// queue); Dify's docker default is 1. See CAPACITY.md.
	JobWorkers int
	// APISlots is how many requests the API process serves at once (gunicorn workers ×
	// worker connections); the others wait before any response byte. 0 → unlimited.
	APISlots int
	// MaxActiveRequests is the per-app concurrency limit (Dify's APP_MAX_ACTIVE_REQUESTS):
	// a generate request beyond it is refused with 400 invalid_param "Too many requests.
	// …". 0 → unlimited.
	MaxActiveRequests int
	// MaxConversations bounds the conversations remembered for conversation_id reuse;
	// 0 → DefaultMaxConversations, < 0 → unlimited.
	MaxConversations int
}

// Validate reports a Config that New would have to clamp: unknown fault
// names, probabilities outside [0,1] or summing above 1, negative Tokens.
func (c Config) Validate() error {
	var errs []error
	if c.Tokens < 0 {
		errs = append(errs, fmt.Errorf("difymock: tokens must be >= 0, got %d", c.Tokens))
	}
	if c.Jitter < 0 {
		errs = append(errs, fmt.Errorf("difymock: jitter must be >= 0, got %v", c.Jitter))
	}
	if c.Stall < 0 {
		errs = append(errs, fmt.Errorf("difymock: stall must be >= 0, got %v", c.Stall))
	}
	if err := validateFaults(c.Faults); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseVersion(c.DifyVersion); err != nil {
		errs = append(errs, err)
	}
	if c.JobWorkers < 0 || c.APISlots < 0 || c.MaxActiveRequests < 0 {
		errs = append(errs, fmt.Errorf("difymock: job workers, API slots and max active requests must be >= 0"))
	}
	return errors.Join(errs...)
}

func validateFaults(m map[string]float64) error {
	sum := 0.0
	for name, p := range m {
		if _, ok := faultByName(name); !ok {
			return fmt.Errorf("difymock: unknown fault %q (known: %s)", name, strings.Join(FaultNames(), ", "))
		}
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("difymock: fault %q probability %v outside [0,1]", name, p)
		}
		sum += p
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("difymock: fault probabilities sum to %v > 1", sum)
	}
	return nil
}

// ParseFaults parses a fault spec such as "429=0.1,error_event=0.05" into
// Config.Faults. A bare name means probability 1 ("stall" ≡ "stall=1").
// Empty input yields an empty map. Names must be known fault names, each
// probability in [0,1], and the sum at most 1.
func ParseFaults(spec string) (map[string]float64, error) {
	out := map[string]float64{}
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, hasVal := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		p := 1.0
		if hasVal {
			var err error
			p, err = strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				return nil, fmt.Errorf("difymock: fault %q: bad probability: %w", name, err)
			}
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("difymock: fault %q given twice", name)
		}
		out[name] = p
	}
	if err := validateFaults(out); err != nil {
		return nil, err
	}
	return out, nil
}

// faultTable is a cumulative probability table, sorted by fault id so that
// the draw is deterministic for a given random number.
type faultTable struct {
	ids []faultID
	cum []float64
}

func newFaultTable(m map[string]float64) faultTable {
	var t faultTable
	type fp struct {
		id faultID
		p  float64
	}
	var list []fp
	for name, p := range m {
		id, ok := faultByName(name)
		if !ok || !(p > 0) {
			continue
		}
		list = append(list, fp{id, min(p, 1)})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].id < list[j].id })
	sum := 0.0
	for _, x := range list {
		sum += x.p
		t.ids = append(t.ids, x.id)
		t.cum = append(t.cum, sum)
	}
	return t
}

// pick maps u in [0,1) to a fault (or fNone).
func (t faultTable) pick(u float64) faultID {
	for i, c := range t.cum {
		if u < c {
			return t.ids[i]
		}
	}
	return fNone
}

// settings are the effective per-request tunables.
type settings struct {
	ttft, tokenDelay, jitter, ping, retrieval, stall time.Duration
	tokens                                           int
}

func (c Config) settings() settings {
	// A zero value means its default (stall and tokens: zero or less).
	s := settings{
		ttft: cmp.Or(c.TTFT, DefaultTTFT), tokenDelay: cmp.Or(c.TokenDelay, DefaultTokenDelay),
		jitter: max(c.Jitter, 0), ping: cmp.Or(c.PingInterval, DefaultPingInterval),
		retrieval: cmp.Or(c.RetrievalLatency, DefaultRetrievalLatency), stall: c.Stall, tokens: c.Tokens,
	}
	if s.stall <= 0 {
		s.stall = DefaultStall
	}
	if s.tokens <= 0 {
		s.tokens = DefaultTokens
	}
	s.ttft, s.tokenDelay, s.retrieval = max(s.ttft, 0), max(s.tokenDelay, 0), max(s.retrieval, 0)
	return s
}
