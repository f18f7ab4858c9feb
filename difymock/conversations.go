package difymock

import "sync"

// DefaultMaxConversations bounds the conversations the mock remembers (Config.MaxConversations).
const DefaultMaxConversations = 100000

// Conversation is the truth about one conversation the mock issued.
type Conversation struct {
	App string `json:"app"`
	// Turns counts the accepted requests of the conversation, the first included.
	Turns int64 `json:"turns"`
	// Reused counts the later requests that sent its conversation_id (Turns - 1).
	Reused int64 `json:"reused"`
}

// conversations remembers the conversation ids the mock issued, per app and user, so that a
// later turn can be told from an id Dify never issued. The oldest are forgotten past max.
type conversations struct {
	mu      sync.Mutex
	max     int
	byID    map[string]*convEntry
	order   []string // issue order, for eviction
	dropped int64
}

type convEntry struct {
	app  appKind
	user string
	c    Conversation
}

// issue registers a new conversation's first turn.
func (cs *conversations) issue(id string, a appKind, user string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.byID == nil {
		cs.byID = map[string]*convEntry{}
	}
	if cs.max > 0 && len(cs.order) >= cs.max {
		old := cs.order[0]
		cs.order = cs.order[1:]
		delete(cs.byID, old)
		cs.dropped++
	}
	cs.byID[id] = &convEntry{app: a, user: user, c: Conversation{App: a.name(), Turns: 1}}
	cs.order = append(cs.order, id)
}

// known reports whether id is a conversation of this app and user.
func (cs *conversations) known(id string, a appKind, user string) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	e := cs.byID[id]
	return e != nil && e.app == a && e.user == user
}

// reuse counts a later turn; it returns the turn number, or 0 when the id is unknown for this
// app and user (Dify: 404 "Conversation Not Exists.").
func (cs *conversations) reuse(id string, a appKind, user string) int64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	e := cs.byID[id]
	if e == nil || e.app != a || e.user != user {
		return 0
	}
	e.c.Turns++
	e.c.Reused++
	return e.c.Turns
}

func (cs *conversations) snapshot() (map[string]Conversation, int64) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make(map[string]Conversation, len(cs.byID))
	for id, e := range cs.byID {
		out[id] = e.c
	}
	return out, cs.dropped
}

func (cs *conversations) reset() {
	cs.mu.Lock()
	cs.byID, cs.order, cs.dropped = nil, nil, 0
	cs.mu.Unlock()
}
