package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/runner"
)

// StatsSource yields the per-interval delta that goes into each stats
// message. *metrics.Stats implements it.
type StatsSource interface {
	// Drain returns everything recorded since the previous Drain.
	Drain(now time.Time) metrics.Report
}

// Config configures a Worker. The zero value (plus classes and a stats
// source) connects to 127.0.0.1:5557 with Locust's default timings.
type Config struct {
	// MasterHost is the master's host name or IP literal; "" → 127.0.0.1.
	// An IPv6 literal (with or without brackets) enables ZMQ_IPV6.
	MasterHost string
	// MasterPort is the master's --master-bind-port; 0 → 5557.
	MasterPort int
	// NodeID is the ZeroMQ identity and the node_id in every message;
	// "" → hostname + "_" + 32 hex digits of a random UUID4, like Python.
	NodeID string
	// HeartbeatInterval is the heartbeat period; 0 → 1s.
	HeartbeatInterval time.Duration
	// StatsInterval is the stats report period; 0 → 3s.
	StatsInterval time.Duration
	// ReadyRetryInterval is how often client_ready is re-sent until an
	// ack arrives; 0 → 5s.
	ReadyRetryInterval time.Duration
	// ConnectTimeout bounds the wait for the very first ack; when it
	// expires Run returns an error. 0 → 5m. After the first ack the worker
	// re-registers forever.
	ConnectTimeout time.Duration
	// MasterTimeout is how long master heartbeat replies (Locust 2.19+) may
	// stop before the worker treats the master as lost: users stop, the
	// state goes back to ready and client_ready is re-sent. It applies only
	// once a heartbeat reply was seen since the last ack. 0 → 60s, Python's
	// MASTER_HEARTBEAT_TIMEOUT (a Python worker quits there; this one waits
	// for a master instead).
	MasterTimeout time.Duration
	// ShutdownGrace is how long in-flight tasks may finish when Run's ctx is
	// cancelled and the master never sent a positive stop_timeout; 0 → 5s.
	//
	ShutdownGrace time.Duration
	// WaitForNewMaster selects what a quit from the master does: false →
	// flush stats, send quit, Run returns nil; true → flush, send quit, stop
	// users, go back to ready and re-register with whatever master comes.
	WaitForNewMaster bool
	// QuitGrace is how long tasks under way may finish when the master sends
	// quit, before the final stats are sent. The master waits only 0.5 s
	// after quit, so it is kept short; streams still running after it are
	// cancelled (not failures) and not reported. 0 → 300ms.
	QuitGrace time.Duration
	// Messages, if set, returns custom messages sent right after every stats
	// report (including the final one at stop and quit). A master-side
	// locustfile receives them with runner.register_message(type, handler).
	// Each Data must be msgpack encodable, like Extras' values.
	Messages func(now time.Time) []Message
	// OnMessage, if set, receives every message from the master whose type
	// the protocol does not use itself: custom messages a master-side
	// locustfile sends with runner.send_message, update_user_class and the
	// spawning_complete broadcast. It runs on the loop's goroutine, in the
	// order frames arrive (a message sent before a spawn is handled before
	// it), so it must not block. data is the decoded msgpack value.
	OnMessage func(typ string, data any)
	// OnSpawn, if set, is called on the loop goroutine for every spawn the
	// worker accepts, before its users are started, with the Env they get:
	// the master's parsed_options tell the embedder which master it serves.
	OnSpawn func(env runner.Env)
	// LogLines, if set, returns the worker's recent log lines, oldest first
	// (at most 500, like Python's log_reader). They are sent in a "logs"
	// message every 10 s when they changed, for the Logs tab of Locust 2.29+
	// masters, and only once the master has shown it is one (its
	// spawning_complete broadcast): older masters log unknown messages.
	LogLines func() []string
	// Extras, if set, returns extra keys merged into every stats payload.
	// The five standard keys cannot be overridden. Values must be msgpack
	// encodable (nil, bool, numbers, strings, slices, string-keyed maps).
	Extras func(now time.Time) map[string]any
	// Logger receives protocol logs; nil → discard.
	Logger *slog.Logger
}

// Message is one custom message for the master.
type Message struct {
	Type string
	Data any
}

// Defaults, as in Locust (HEARTBEAT_INTERVAL, WORKER_REPORT_INTERVAL,
// CONNECT_TIMEOUT) where Locust has one.
const (
	defaultMasterHost         = "127.0.0.1"
	defaultMasterPort         = 5557
	defaultHeartbeatInterval  = time.Second
	defaultStatsInterval      = 3 * time.Second
	defaultReadyRetryInterval = 5 * time.Second
	defaultConnectTimeout     = 5 * time.Minute
	defaultMasterTimeout      = 60 * time.Second
	defaultShutdownGrace      = 5 * time.Second
	defaultQuitGrace          = 300 * time.Millisecond
)

// Validate reports configuration values that can never work. Zero values
// are valid (they mean "default").
func (c Config) Validate() error {
	var errs []error
	if c.MasterPort < 0 || c.MasterPort > 65535 {
		errs = append(errs, fmt.Errorf("master port %d out of range", c.MasterPort))
	}
	if len(c.NodeID) > 255 {
		errs = append(errs, fmt.Errorf("node id is %d bytes, ZeroMQ allows at most 255", len(c.NodeID)))
	}
	if c.NodeID != "" && !validUTF8(c.NodeID) {
		errs = append(errs, errors.New("node id is not valid UTF-8"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"heartbeat interval", c.HeartbeatInterval},
		{"stats interval", c.StatsInterval},
		{"ready retry interval", c.ReadyRetryInterval},
		{"connect timeout", c.ConnectTimeout},
		{"master timeout", c.MasterTimeout},
		{"shutdown grace", c.ShutdownGrace},
		{"quit grace", c.QuitGrace},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, d.v))
		}
	}
	return errors.Join(errs...)
}

// withDefaults returns a copy with every zero value replaced by its default.
func (c Config) withDefaults() Config {
	if c.MasterHost == "" {
		c.MasterHost = defaultMasterHost
	}
	if c.MasterPort == 0 {
		c.MasterPort = defaultMasterPort
	}
	setDur := func(p *time.Duration, def time.Duration) {
		if *p == 0 {
			*p = def
		}
	}
	setDur(&c.HeartbeatInterval, defaultHeartbeatInterval)
	setDur(&c.StatsInterval, defaultStatsInterval)
	setDur(&c.ReadyRetryInterval, defaultReadyRetryInterval)
	setDur(&c.ConnectTimeout, defaultConnectTimeout)
	setDur(&c.MasterTimeout, defaultMasterTimeout)
	setDur(&c.ShutdownGrace, defaultShutdownGrace)
	setDur(&c.QuitGrace, defaultQuitGrace)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
