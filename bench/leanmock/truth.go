package main

import (
	"encoding/json"
	"sync"
)

// record is one request's truth, in difymock's /_mock/stats names (Unix ns).
type record struct {
	messageID  string
	outcome    string
	tokens     int
	received   int64
	firstToken int64
	// firstTokenWrite is when the first token's write began (firstToken: when it returned).
	firstTokenWrite int64
}

// truth is what the bench reads back: counts by outcome, the streams open now and every
// finished request since the last reset.
type truth struct {
	mu       sync.Mutex
	inFlight int
	counts   map[string]int
	records  []record
}

func newTruth() *truth { return &truth{counts: map[string]int{}} }

func (t *truth) begin() {
	t.mu.Lock()
	t.inFlight++
	t.mu.Unlock()
}

func (t *truth) end(r record) {
	t.mu.Lock()
	t.inFlight--
	t.counts[r.outcome]++
	t.records = append(t.records, r)
	t.mu.Unlock()
}

func (t *truth) reset() {
	t.mu.Lock()
	t.counts, t.records = map[string]int{}, nil
	t.mu.Unlock()
}

type jsonRecord struct {
	MessageID  string `json:"message_id"`
	Endpoint   string `json:"endpoint"`
	Outcome    string `json:"outcome"`
	Tokens     int    `json:"tokens"`
	Received   int64  `json:"received"`
	FirstToken int64  `json:"first_token"`
	Write      int64  `json:"first_token_write"`
}

// stats is the /_mock/stats body: counts, in_flight and (withRecords) the records.
func (t *truth) stats(withRecords bool) []byte {
	t.mu.Lock()
	out := struct {
		Counts   map[string]map[string]int `json:"counts"`
		InFlight int                       `json:"in_flight"`
		Records  []jsonRecord              `json:"records,omitempty"`
	}{Counts: map[string]map[string]int{"chat-messages": {}}, InFlight: t.inFlight}
	for k, v := range t.counts {
		out.Counts["chat-messages"][k] = v
	}
	if withRecords {
		out.Records = make([]jsonRecord, 0, len(t.records))
		for _, r := range t.records {
			out.Records = append(out.Records, jsonRecord{MessageID: r.messageID, Endpoint: "chat-messages",
				Outcome: r.outcome, Tokens: r.tokens, Received: r.received, FirstToken: r.firstToken, Write: r.firstTokenWrite})
		}
	}
	t.mu.Unlock()
	b, err := json.Marshal(out)
	if err != nil {
		return []byte("{}")
	}
	return b
}
