package tasks

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/runner"
	"github.com/difyload/difyload/sse"
	"github.com/difyload/difyload/workload"
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

// TurnObserver is a StreamObserver that also wants to know the turn of a stream inside a
// multi-turn conversation (1 = first turn); single-turn streams are reported with turn 0.
type TurnObserver interface {
	ObserveTurn(flow string, turn int, res *sse.Result, err error)
}

var (
	_ Streamer = (*sse.Client)(nil)
	_ Recorder = (*metrics.Stats)(nil)
)

// Deps are what every class of a workload shares.
type Deps struct {
	// Client sends the requests of apps without their own timeout (required).
	Client Streamer
	// ClientFor returns a client whose whole-request timeout is d, for apps with a
	// timeout; nil: every app uses Client.
	ClientFor func(d time.Duration) Streamer
	// Recorder receives the samples (required); Observer (optional) every stream.
	Recorder Recorder
	Observer StreamObserver
	// Host overrides the target base URL; "" → the class's host, then the master's --host.
	Host string
	// SplitFlows names the SSE rows per app ("TTFB SimpleChatFlow"); the master's
	// --dify-split-flows turns it on too.
	SplitFlows bool
	// Header is added to every request.
	Header http.Header
	// Option resolves a key_option / dataset_id_option at user creation, given the
	// master's parsed_options (nil when stand-alone). nil: parsed_options only.
	Option func(opts map[string]any, name string) string
}

// Class is one Locust user class of a workload. It is safe for concurrent use: the worker
// creates users from it as spawn messages arrive, and Update may change it between spawns.
type Class struct {
	def   workload.UserClass
	deps  Deps
	runID string
	tasks []taskDef

	mu      sync.Mutex
	host    string   // update_user_class
	only    []string // update_user_class task names; nil = all
	onlySet bool
}

type taskDef struct {
	name   string
	weight int
	tags   []string
	act    action
}

// action runs one task: one conversation of an app, or one knowledge-base query.
type action interface {
	run(ctx context.Context, u *User, st *pickState) error
	// target is the app or knowledge base name; check reports what a user cannot run
	// (a key that resolves to nothing).
	target() string
	check(u *User) error
}

// NewClasses builds one Class per user class of w. Keys that come from options are
// resolved per user (see Deps.Option); the others must already be resolved.
func NewClasses(w *workload.Workload, deps Deps) ([]*Class, error) {
	if deps.Client == nil || deps.Recorder == nil {
		return nil, errors.New("tasks: client and recorder are required")
	}
	if deps.Host != "" {
		if _, err := baseURL(deps.Host); err != nil {
			return nil, err
		}
	}
	perEndpoint := map[string]int{}
	for _, a := range w.Apps {
		perEndpoint[endpointOf(a.Type)]++
	}
	acts := map[string]action{}
	for i := range w.Apps {
		a := &w.Apps[i]
		k, err := newAppAction(a, deps.clientFor(a.Timeout), perEndpoint[endpointOf(a.Type)] > 1)
		if err != nil {
			return nil, err
		}
		acts[a.Name] = k
	}
	for i := range w.KnowledgeBases {
		kb := &w.KnowledgeBases[i]
		acts[kb.Name] = newRetrieveAction(kb, deps.clientFor(kb.Timeout), len(w.KnowledgeBases) > 1)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	runID := hex.EncodeToString(b[:])
	out := make([]*Class, 0, len(w.Users))
	for _, u := range w.Users {
		c := &Class{def: u, deps: deps, runID: runID, host: u.Host}
		for _, t := range u.Tasks {
			act, ok := acts[t.Target]
			if !ok {
				return nil, fmt.Errorf("tasks: class %s: task %s: no app or knowledge base %q", u.Name, t.Name, t.Target)
			}
			c.tasks = append(c.tasks, taskDef{name: t.Name, weight: t.Weight, tags: t.Tags, act: act})
		}
		out = append(out, c)
	}
	return out, nil
}

func (d *Deps) clientFor(timeout time.Duration) Streamer {
	if timeout > 0 && d.ClientFor != nil {
		return d.ClientFor(timeout)
	}
	return d.Client
}

// Name is the Locust class name.
func (c *Class) Name() string { return c.def.Name }

// Weight is the class weight for standalone runs (the master splits users itself).
func (c *Class) Weight() int { return max(c.def.Weight, 1) }

// FixedCount is the class's fixed_count for standalone runs (0: by weight).
func (c *Class) FixedCount() int { return c.def.FixedCount }

// Definition is the workload's class.
func (c *Class) Definition() workload.UserClass { return c.def }

// Update applies the master's update_user_class (Locust 2.25+, the web UI's class
// editor): host and the task subset (by task name) for users created afterwards; weight
// and fixed_count are the master's business. Unknown fields are ignored.
func (c *Class) Update(settings map[string]any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := settings["host"].(string); ok {
		c.host = h
	} else if v, present := settings["host"]; present && v == nil {
		c.host = c.def.Host
	}
	if ts, ok := settings["tasks"].([]any); ok {
		c.only = c.only[:0]
		for _, t := range ts {
			if s, ok := t.(string); ok {
				c.only = append(c.only, s)
			}
		}
		c.onlySet = true
	}
}

// TaskNames lists the class's task names in order.
func (c *Class) TaskNames() []string {
	out := make([]string, len(c.tasks))
	for i, t := range c.tasks {
		out[i] = t.name
	}
	return out
}

// User is one simulated user of a Class. It is used by one goroutine.
type User struct {
	class *Class
	base  string
	user  string // Dify "user", unique per simulated user
	rng   *mrand.Rand
	opts  map[string]any
	split bool
	seed  uint64 // shard of the query sequences (worker index, user id)

	tasks   []taskDef
	weights []int
	total   int
	picks   map[string]*pickState

	wait      waiter
	taskStart time.Time
}

var (
	_ runner.UserClass    = (*Class)(nil)
	_ runner.FixedCounter = (*Class)(nil)
	_ runner.User         = (*User)(nil)
)

// NewUser implements runner.UserClass: it creates simulated user number id on the worker
// the master numbered env.WorkerIndex (-1: stand-alone). env.Host is the master's --host
// (spawn message), env.ParsedOptions its parsed_options: --tags/--exclude-tags select the
// tasks, dify_split_flows names the rows.
func (c *Class) NewUser(id int, env runner.Env) (runner.User, error) {
	u, err := c.newUser(id, env.WorkerIndex, env.Host, env.ParsedOptions)
	if err != nil {
		return nil, err
	}
	return u, nil
}

// newUser is NewUser with the concrete type.
func (c *Class) newUser(id, workerIndex int, host string, opts map[string]any) (*User, error) {
	c.mu.Lock()
	classHost, only, onlySet := c.host, slices.Clone(c.only), c.onlySet
	c.mu.Unlock()
	h := c.deps.Host
	if h == "" {
		h = classHost
	}
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
	u := &User{
		class: c,
		base:  base,
		user:  fmt.Sprintf("difyload-%s-%s-%d", c.runID, c.def.Name, id),
		opts:  opts,
		split: c.deps.SplitFlows || opts[optionSplitFlows] == true,
		seed:  splitmix(uint64(workerIndex+1)<<32 ^ uint64(id)),
		picks: map[string]*pickState{},
	}
	if workerIndex >= 0 {
		u.user = fmt.Sprintf("difyload-%s-w%d-%s-%d", c.runID, workerIndex, c.def.Name, id)
	}
	u.rng = mrand.New(mrand.NewPCG(u.seed, uint64(time.Now().UnixNano())))
	tags, exclude := stringSet(opts["tags"]), stringSet(opts["exclude_tags"])
	var keyErr error
	for _, t := range c.tasks {
		if onlySet && !slices.Contains(only, t.name) {
			continue
		}
		if !tagged(t.tags, tags, exclude) || t.weight <= 0 {
			continue
		}
		// A task whose key resolves to nothing is left out (the built-in workload with
		// only one chatflow key set runs that one); with no task left it is an error.
		if err := t.act.check(u); err != nil {
			keyErr = cmp.Or(keyErr, fmt.Errorf("%s: task %s: %w", c.def.Name, t.name, err))
			continue
		}
		u.tasks = append(u.tasks, t)
		u.weights = append(u.weights, t.weight)
		u.total += t.weight
	}
	if u.total == 0 && keyErr != nil {
		return nil, keyErr
	}
	u.wait = newWaiter(c.def.Wait)
	return u, nil
}

// tagged is Locust's filter_tasks_by_tags for one task: with --tags a task needs one of
// them; with --exclude-tags it must have none of those.
func tagged(taskTags []string, tags, exclude map[string]bool) bool {
	if tags != nil {
		hit := false
		for _, t := range taskTags {
			hit = hit || tags[t]
		}
		if !hit {
			return false
		}
	}
	for _, t := range taskTags {
		if exclude[t] {
			return false
		}
	}
	return true
}

// stringSet reads a parsed_options list (msgpack []any of strings); nil when absent.
func stringSet(v any) map[string]bool {
	l, ok := v.([]any)
	if !ok {
		if s, ok := v.([]string); ok {
			l = make([]any, len(s))
			for i := range s {
				l[i] = s[i]
			}
		} else {
			return nil
		}
	}
	out := make(map[string]bool, len(l))
	for _, x := range l {
		if s, ok := x.(string); ok {
			out[s] = true
		}
	}
	return out
}

// ErrNoTasks is what RunTask returns when --tags/--exclude-tags or the class editor left a
// class without tasks (Locust raises for such a user too).
var ErrNoTasks = errors.New("no tasks left after --tags/--exclude-tags or the class editor")

// RunTask runs one weighted-random task of the user's class. Request failures are
// recorded as Locust failures and are not errors; an error means the task could not run.
func (u *User) RunTask(ctx context.Context) error {
	u.taskStart = time.Now()
	if u.total == 0 {
		return fmt.Errorf("%s: %w", u.class.def.Name, ErrNoTasks)
	}
	t := &u.tasks[0]
	if len(u.tasks) > 1 {
		n := u.rng.IntN(u.total)
		for i, w := range u.weights {
			if n < w {
				t = &u.tasks[i]
				break
			}
			n -= w
		}
	}
	return t.act.run(ctx, u, u.pick(t.act))
}

// WaitTime is the class's wait_time after a task. A user without tasks reported that once
// and then idles (a stop still ends it at once), as a Python user without tasks dies.
func (u *User) WaitTime() time.Duration {
	if u.total == 0 {
		return time.Hour
	}
	return u.wait.next(u.rng, u.taskStart)
}

func (u *User) option(name string) string {
	if u.class.deps.Option != nil {
		return u.class.deps.Option(u.opts, name)
	}
	s, _ := u.opts[name].(string)
	return s
}

// secret is a key's value for this user: resolved, or from an option.
func (u *User) secret(s workload.Secret) string {
	if s.Value != "" {
		return s.Value
	}
	if s.Option != "" {
		return u.option(s.Option)
	}
	return ""
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

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// NewChatUser returns the built-in workload's ChatUser class for cfg. observer may be nil.
func NewChatUser(cfg Config, client Streamer, rec Recorder, observer StreamObserver) (*Class, error) {
	return builtinClass(cfg, ClassChatUser, client, rec, observer)
}

// NewRetrieveUser returns the built-in workload's RetrieveUser class for cfg.
func NewRetrieveUser(cfg Config, client Streamer, rec Recorder) (*Class, error) {
	return builtinClass(cfg, ClassRetrieveUser, client, rec, nil)
}

func builtinClass(cfg Config, name string, client Streamer, rec Recorder, obs StreamObserver) (*Class, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cs, err := NewClasses(cfg.Workload(), cfg.Deps(client, rec, obs))
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if c.Name() == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("tasks: the built-in workload has no class %s", name)
}
