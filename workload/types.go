package workload

import (
	"time"

	"github.com/difyload/difyload/sse"
)

// MessageType is the custom Locust message that carries the workload from the master to
// every worker (sent at test_start, before the first spawn).
const MessageType = "difyload_workload"

// Workload is a checked workload.
type Workload struct {
	// Source names where it came from (a file name, "built-in default", "master").
	Source         string
	Apps           []App
	KnowledgeBases []KnowledgeBase
	Users          []UserClass
	SLO            SLO
}

// Secret is where a key comes from: an environment variable, a master option, or (in the
// master's message only) the resolved value.
type Secret struct {
	Env, Option string
	Value       string
}

// App is one Dify app.
type App struct {
	Name string
	Type sse.Mode
	Key  Secret
	// Inputs are the app's "inputs"; a dataset row's input columns override them.
	Inputs map[string]any
	// Queries are where the queries come from; empty for a workflow without a query.
	Queries Queries
	// QueryInput, for completion and workflow apps, is the input variable that also
	// receives the query ("" for completion: only the query field).
	QueryInput string
	// Files are Dify's remote-URL file inputs, passed through as they are.
	Files []any
	// Timeout bounds one request (0: the worker's --stream-timeout).
	Timeout time.Duration
	// Turns is the conversation length (chat, agent, chatflow); {1,1} when unset.
	Turns IntRange
	// ThinkTime is the pause between two turns of a conversation.
	ThinkTime DurationRange
}

// KnowledgeBase is one Dify knowledge base queried with /v1/datasets/{id}/retrieve.
type KnowledgeBase struct {
	Name           string
	DatasetID      Secret // the id is no secret, but it may come from the env or an option
	Key            Secret
	Queries        Queries
	RetrievalModel map[string]any
	Timeout        time.Duration
}

// Target is the name every app and knowledge base shares with tasks.
func (a *App) Target() string           { return a.Name }
func (k *KnowledgeBase) Target() string { return k.Name }

// Pick is how a user walks through its queries.
type Pick string

// The picks.
const (
	PickSequential Pick = "sequential"
	PickRandom     Pick = "random"
)

// Queries are inline or a dataset.
type Queries struct {
	Inline  []string
	Dataset *Dataset
	Pick    Pick
}

// Len is the number of queries (0: none).
func (q *Queries) Len() int {
	if q.Dataset != nil {
		return q.Dataset.Len()
	}
	return len(q.Inline)
}

// IntRange is a fixed number (Min == Max) or a uniform range.
type IntRange struct{ Min, Max int }

// DurationRange is a fixed duration (Min == Max) or a uniform range.
type DurationRange struct{ Min, Max time.Duration }

// UserClass is one Locust user class.
type UserClass struct {
	Name       string
	Weight     int
	FixedCount int
	Host       string
	Wait       Wait
	Tasks      []Task
}

// Task is one weighted task of a class: it runs one app (one conversation) or one
// knowledge-base query.
type Task struct {
	// Name is the Locust task name (the function name in the web UI's class editor).
	Name string
	// Target is the app or knowledge base name.
	Target string
	Weight int
	Tags   []string
}

// WaitKind is a Locust wait_time function.
type WaitKind string

// The wait_time functions Locust documents.
const (
	WaitBetween            WaitKind = "between"
	WaitConstant           WaitKind = "constant"
	WaitConstantPacing     WaitKind = "constant_pacing"
	WaitConstantThroughput WaitKind = "constant_throughput"
	WaitPoisson            WaitKind = "poisson"
)

// Wait is a class's wait_time: Min/Max for between, Min for constant and constant_pacing,
// Rate (per second) for constant_throughput and poisson.
type Wait struct {
	Kind     WaitKind
	Min, Max time.Duration
	Rate     float64
}

// SLO are the goodput objectives; zero fields are unset.
type SLO struct {
	TTFT, TPOT, E2E time.Duration
}
