package tasks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/sse"
)

// Streamer is what a user needs from the sse client; *sse.Client implements it.
type Streamer interface {
	Stream(ctx context.Context, req sse.Request) (*sse.Result, error)
	Post(ctx context.Context, req sse.Request) (*sse.Response, error)
}

// Recorder receives the Locust samples; *metrics.Stats implements it.
type Recorder interface {
	Record(metrics.Sample)
}

// StreamObserver, when set, sees every finished chat stream (for LLM metrics such as TPOT
// and inter-chunk gaps). A cancelled stream is not observed.
type StreamObserver interface {
	ObserveStream(flow string, res *sse.Result, err error)
}

var (
	_ Streamer = (*sse.Client)(nil)
	_ Recorder = (*metrics.Stats)(nil)
)

// Class is one Locust user class (ChatUser or RetrieveUser). It is safe for concurrent use:
// the worker creates users from it as spawn messages arrive.
type Class struct {
	name     string
	weight   int
	cfg      Config
	client   Streamer
	rec      Recorder
	observer StreamObserver
	runID    string
}

// NewChatUser returns the ChatUser class. observer may be nil.
func NewChatUser(cfg Config, client Streamer, rec Recorder, observer StreamObserver) (*Class, error) {
	return newClass("ChatUser", cfg.ChatUserWeight, cfg, client, rec, observer)
}

// NewRetrieveUser returns the RetrieveUser class.
func NewRetrieveUser(cfg Config, client Streamer, rec Recorder) (*Class, error) {
	return newClass("RetrieveUser", cfg.RetrieveUserWeight, cfg, client, rec, nil)
}

func newClass(name string, weight int, cfg Config, client Streamer, rec Recorder, obs StreamObserver) (*Class, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil || rec == nil {
		return nil, errors.New("tasks: client and recorder are required")
	}
	if len(cfg.Queries) == 0 {
		cfg.Queries = DefaultQueries()
	}
	if cfg.SimpleWeight == 0 && cfg.ComplexWeight == 0 {
		cfg.SimpleWeight, cfg.ComplexWeight = 1, 1
	}
	if weight <= 0 {
		weight = 1
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &Class{name: name, weight: weight, cfg: cfg, client: client, rec: rec, observer: obs, runID: hex.EncodeToString(b[:])}, nil
}

// Name is the Locust class name.
func (c *Class) Name() string { return c.name }

// Weight is the class weight for standalone runs.
func (c *Class) Weight() int { return c.weight }

// User is one simulated user of a Class.
type User struct {
	class *Class
	base  string
	keys  Keys
	user  string // Dify "user", unique per simulated user
	rng   *mrand.Rand
	wait  WaitRange
	next  int // next query index
	split bool
	body  chatBody
}

// NewUser creates simulated user number id. host is the master's --host (spawn message),
// used unless Config.Host overrides it; opts are the master's parsed_options.
func (c *Class) NewUser(id int, host string, opts map[string]any) (*User, error) {
	h := c.cfg.Host
	if h == "" {
		h = host
	}
	if h == "" {
		return nil, errors.New("no target host: set the master's --host or the worker's --host")
	}
	base, err := baseURL(h)
	if err != nil {
		return nil, err
	}
	keys := c.cfg.resolveKeys(opts)
	u := &User{
		class: c,
		base:  base,
		keys:  keys,
		user:  fmt.Sprintf("difyload-%s-%s-%d", c.runID, c.name, id),
		rng:   mrand.New(mrand.NewPCG(uint64(id), uint64(time.Now().UnixNano()))),
		next:  id,
		split: c.cfg.SplitFlows || opts[optionSplitFlows] == true,
	}
	switch c.name {
	case "ChatUser":
		if keys.SimpleAppKey == "" && keys.ComplexAppKey == "" {
			return nil, errors.New("ChatUser: no app key: set --simple-app-key/--complex-app-key or the master's --dify-simple-app-key")
		}
		u.wait = WaitRange{Min: time.Second, Max: 3 * time.Second}
		if c.cfg.ChatWait != nil {
			u.wait = *c.cfg.ChatWait
		}
		inputs := c.cfg.Inputs
		if inputs == nil {
			inputs = map[string]any{}
		}
		u.body = chatBody{Inputs: inputs, ResponseMode: "streaming", User: u.user, ConversationID: "", AutoGenerateName: false}
	default:
		if keys.DatasetKey == "" || keys.DatasetID == "" {
			return nil, errors.New("RetrieveUser: no dataset: set --dataset-id and --dataset-key or the master's --dify-dataset-id/--dify-dataset-key")
		}
		u.wait = WaitRange{Min: 2 * time.Second, Max: 5 * time.Second}
		if c.cfg.RetrieveWait != nil {
			u.wait = *c.cfg.RetrieveWait
		}
	}
	return u, nil
}

// WaitTime draws the wait after a task: uniform in [Min, Max].
func (u *User) WaitTime() time.Duration {
	if u.wait.Max <= u.wait.Min {
		return u.wait.Min
	}
	return u.wait.Min + time.Duration(u.rng.Int64N(int64(u.wait.Max-u.wait.Min)+1))
}

// RunTask runs one task of the user's class. Request failures are recorded as Locust
// failures and are not errors; an error means the task itself could not run.
func (u *User) RunTask(ctx context.Context) error {
	if u.class.name == "ChatUser" {
		return u.chat(ctx)
	}
	return u.retrieve(ctx)
}

type chatBody struct {
	Inputs           map[string]any `json:"inputs"`
	Query            string         `json:"query"`
	ResponseMode     string         `json:"response_mode"`
	User             string         `json:"user"`
	ConversationID   string         `json:"conversation_id"`
	AutoGenerateName bool           `json:"auto_generate_name"`
}

func (u *User) pickFlow() (flow, key string) {
	cfg := &u.class.cfg
	sw, cw := cfg.SimpleWeight, cfg.ComplexWeight
	if u.keys.SimpleAppKey == "" {
		sw = 0
	}
	if u.keys.ComplexAppKey == "" {
		cw = 0
	}
	if sw+cw == 0 { // the only configured key wins
		if u.keys.SimpleAppKey != "" {
			return FlowSimpleChat, u.keys.SimpleAppKey
		}
		return FlowComplexChat, u.keys.ComplexAppKey
	}
	if u.rng.IntN(sw+cw) < sw {
		return FlowSimpleChat, u.keys.SimpleAppKey
	}
	return FlowComplexChat, u.keys.ComplexAppKey
}

func (u *User) nextQuery() string {
	qs := u.class.cfg.Queries
	q := qs[u.next%len(qs)]
	u.next++
	return q
}

func (u *User) chat(ctx context.Context) error {
	flow, key := u.pickFlow()
	u.body.Query = u.nextQuery()
	body, err := json.Marshal(&u.body)
	if err != nil {
		return fmt.Errorf("encode chat request: %w", err)
	}
	res, err := u.class.client.Stream(ctx, sse.Request{
		URL:    u.base + "/v1/chat-messages",
		APIKey: key,
		Body:   body,
		Header: u.class.cfg.Header,
	})
	u.class.recordStream(flow, u.split, res, err)
	if u.class.observer != nil && !sse.IsCancelled(err) {
		u.class.observer.ObserveStream(flow, res, err)
	}
	return unexpected(err)
}

type retrieveBody struct {
	Query          string         `json:"query"`
	RetrievalModel retrievalModel `json:"retrieval_model"`
}

type retrievalModel struct {
	SearchMethod          string  `json:"search_method"`
	RerankingEnable       bool    `json:"reranking_enable"`
	RerankingMode         *string `json:"reranking_mode"`
	TopK                  int     `json:"top_k"`
	ScoreThresholdEnabled bool    `json:"score_threshold_enabled"`
}

func (u *User) retrieve(ctx context.Context) error {
	body, err := json.Marshal(retrieveBody{
		Query: DefaultRetrieveQuery,
		RetrievalModel: retrievalModel{
			SearchMethod: "hybrid_search", RerankingEnable: false, TopK: 3, ScoreThresholdEnabled: false,
		},
	})
	if err != nil {
		return fmt.Errorf("encode retrieve request: %w", err)
	}
	resp, err := u.class.client.Post(ctx, sse.Request{
		URL:    u.base + "/v1/datasets/" + u.keys.DatasetID + "/retrieve",
		APIKey: u.keys.DatasetKey,
		Body:   body,
		Header: u.class.cfg.Header,
	})
	u.class.recordRetrieve(resp, err)
	return unexpected(err)
}

// unexpected filters what RunTask returns: stream errors and cancellations are samples,
// anything else is a bug worth an entry in the Exceptions tab.
func unexpected(err error) error {
	var se *sse.StreamError
	if err == nil || errors.As(err, &se) {
		return nil
	}
	return err
}
