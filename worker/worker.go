package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/difyload/difyload/runner"
)

// Worker is a Locust worker: it registers with a master over ZeroMQ, runs
// the users the master asks for, and reports their stats.
type Worker struct {
	cfg     Config
	classes []runner.UserClass
	stats   StatsSource
	log     *slog.Logger
	nodeID  string
	dial    dialer
	started atomic.Bool

	mu    sync.Mutex
	sched *runner.Scheduler // once Run started
	loopX *loop             // once Run started
}

// Limits on what the worker sends per stats interval.
const (
	exceptionBudget = 100 // exception messages per stats interval
	closeLinger     = time.Second
	// logInterval is Python's WORKER_LOG_REPORT_INTERVAL.
	logInterval = 10 * time.Second
	// maxLogLines is the length of Python's log_reader deque.
	maxLogLines = 500
	// reconnectVerifyBeats: after a TCP reconnect to a master that answers
	// heartbeats, this many heartbeat intervals without an answer mean the
	// master does not know this node (it is a new one).
	reconnectVerifyBeats = 5
)

// New validates cfg and returns a Worker for classes (at least one, unique
// names) reporting the stats of stats.
func New(cfg Config, classes []runner.UserClass, stats StatsSource) (*Worker, error) {
	return newWorker(cfg, classes, stats, zmqDial)
}

func newWorker(cfg Config, classes []runner.UserClass, stats StatsSource, dial dialer) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("worker: invalid config: %w", err)
	}
	if stats == nil {
		return nil, errors.New("worker: nil StatsSource")
	}
	if len(classes) == 0 {
		return nil, errors.New("worker: no user classes")
	}
	seen := map[string]bool{}
	for _, c := range classes {
		if c == nil {
			return nil, errors.New("worker: nil UserClass")
		}
		n := c.Name()
		if n == "" || !validUTF8(n) {
			return nil, fmt.Errorf("worker: invalid user class name %q", n)
		}
		if seen[n] {
			return nil, fmt.Errorf("worker: duplicate user class %q", n)
		}
		seen[n] = true
	}
	cfg = cfg.withDefaults()
	id := cfg.NodeID
	if id == "" {
		var err error
		if id, err = defaultNodeID(); err != nil {
			return nil, fmt.Errorf("worker: node id: %w", err)
		}
	}
	return &Worker{
		cfg:     cfg,
		classes: append([]runner.UserClass(nil), classes...),
		stats:   stats,
		log:     cfg.Logger.With("node_id", id),
		nodeID:  id,
		dial:    dial,
	}, nil
}

// SetClasses replaces the user classes, e.g. with a workload the master sent in a custom
// message: call it from Config.OnMessage (a message sent before a spawn is handled before
// it) or before Run. Names must be unique and valid; an empty list makes the worker run
// nothing (every class the master asks for is then reported as unknown).
func (w *Worker) SetClasses(classes []runner.UserClass) error {
	seen := map[string]bool{}
	for _, c := range classes {
		if c == nil {
			return errors.New("worker: nil UserClass")
		}
		n := c.Name()
		if n == "" || !validUTF8(n) || seen[n] {
			return fmt.Errorf("worker: invalid or duplicate user class name %q", n)
		}
		seen[n] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.classes = append([]runner.UserClass(nil), classes...)
	if w.sched != nil {
		w.sched.SetClasses(w.classes)
	}
	if w.loopX != nil {
		clear(w.loopX.unknownLogged)
	}
	return nil
}

// ReportException sends an entry to the master's Exceptions tab (rate-limited like the
// users' exceptions). It is safe from any goroutine; before Run it is dropped.
func (w *Worker) ReportException(msg, traceback string) {
	w.mu.Lock()
	l := w.loopX
	w.mu.Unlock()
	if l != nil {
		l.onException(msg, traceback)
	}
}

// NodeID returns the worker's node id (its ZeroMQ identity).
func (w *Worker) NodeID() string { return w.nodeID }

// defaultNodeID is Python's f"{socket.gethostname()}_{uuid4().hex}".
func defaultNodeID() (string, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", err
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	id := clean(host) + "_" + hex.EncodeToString(u[:])
	if len(id) > 255 {
		id = id[len(id)-255:]
	}
	return id, nil
}

// Run connects to the master and serves it until the master quits (nil,
// unless WaitForNewMaster), no ack arrives within ConnectTimeout (error), or
// ctx is cancelled. Cancellation is a two-stage stop: no new tasks start and
// waits end at once, in-flight tasks get the master's last stop_timeout (or
// ShutdownGrace) to finish and are then cancelled; the final stats and a
// quit are sent, and Run returns nil. Run may be called once.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("worker: Run called more than once")
	}
	ep := resolveEndpoint(ctx, w.cfg.MasterHost, w.cfg.MasterPort)
	c, err := w.dial(ctx, ep, w.nodeID, w.log)
	if err != nil {
		return fmt.Errorf("worker: connect to master at %s: %w", ep, err)
	}
	l := newLoop(w, c, ep)
	w.mu.Lock()
	w.sched, w.loopX = l.sched, l
	w.mu.Unlock()
	return l.run(ctx)
}

// phase is what the protocol loop is doing besides serving the socket.
type phase int

const (
	phaseNormal    phase = iota
	phaseStopping        // master stop: users stopping, then client_stopped, sleep, client_ready
	phaseResetting       // master lost: users stopping, then client_ready
	phaseShutdown        // Run's ctx cancelled: users stopping, then stats, quit, return
)

// loop is the protocol state machine. It runs in Run's goroutine; user
// goroutines (via the Scheduler) and one stopper goroutine at a time are
// its only helpers.
type loop struct {
	w     *Worker
	cfg   Config
	log   *slog.Logger
	conn  conn
	ep    endpoint
	sched *runner.Scheduler
	exc   *exceptionLimiter
	excCh chan exceptionData
	proc  procSampler

	state string
	phase phase

	// Registration.
	reg        registration
	everAcked  bool
	index      int
	readyTimer *time.Timer
	connTimer  *time.Timer

	// Master liveness.
	lastHB   time.Time
	peerLost bool      // transport saw a disconnect and no new session yet
	retries  int       // connection attempts scheduled since the disconnect
	verifyBy time.Time // after a reconnect: a heartbeat must arrive by then (2.19+)

	// What the master showed of itself.
	broadcasts bool // it broadcast spawning_complete: 2.29+ (logs, reset-stats)
	resetStats bool // the last spawn's parsed_options had reset_stats
	logsSent   []string

	// Spawn.
	lastSpawnTS    float64
	stopTimeout    time.Duration
	stopTimeoutSet bool // a spawn carried a positive stop_timeout
	unknownLogged  map[string]bool

	// Background stop.
	stopDone   chan struct{}
	stopCancel context.CancelFunc
	afterStop  *time.Timer // sleep stop_timeout after client_stopped
	dropped    int         // frames the transport refused since the last log
	quitSent   bool
}

// registration is where the worker stands with the master.
type registration int

const (
	regNone   registration = iota // not registered, not asking (after a stop or a lost master)
	regAsking                     // client_ready sent (and re-sent), waiting for an ack
	regAcked                      // acked; no master heartbeat since (2.12.1, or 2.19+ before its first)
	regHeard                      // acked, and a master heartbeat arrived since: MasterTimeout applies
)

// acked reports whether the master acknowledged this worker (and has not lost it since).
func (r registration) acked() bool { return r == regAcked || r == regHeard }

func newLoop(w *Worker, c conn, ep endpoint) *loop {
	l := &loop{
		w:             w,
		cfg:           w.cfg,
		log:           w.log,
		conn:          c,
		ep:            ep,
		exc:           newExceptionLimiter(exceptionBudget),
		excCh:         make(chan exceptionData, exceptionBudget),
		state:         stateReady,
		unknownLogged: map[string]bool{},
		index:         -1,
	}
	l.sched = runner.NewScheduler(w.classes, l.onException)
	return l
}

// onException is called by user goroutines.
func (l *loop) onException(msg, tb string) {
	if !l.exc.record(msg, tb) {
		return
	}
	select {
	case l.excCh <- exceptionData{Msg: msg, Traceback: tb}:
	default:
		l.exc.requeue(tb)
	}
}

// timerC returns t's channel, or nil (blocks forever) for a nil timer.
func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

func (l *loop) run(ctx context.Context) (err error) {
	defer func() {
		// Whatever happened, no user goroutine and no stopper outlive Run.
		l.stopUsersNow(ctx)
		stopTimer(l.readyTimer)
		stopTimer(l.connTimer)
		stopTimer(l.afterStop)
		l.conn.close(closeLinger)
	}()

	hb := time.NewTicker(l.cfg.HeartbeatInterval)
	defer hb.Stop()
	lt := time.NewTicker(logInterval)
	defer lt.Stop()
	st := time.NewTicker(l.cfg.StatsInterval)
	defer st.Stop()
	l.connTimer = time.NewTimer(l.cfg.ConnectTimeout)
	started := time.Now()
	l.proc.cpuPercent(time.Now())
	l.log.Info("connecting to master", "endpoint", l.ep.String())
	l.startRegistering()

	ctxDone := ctx.Done()
	for {
		select {
		case <-ctxDone:
			ctxDone = nil
			l.log.Info("shutting down: stopping users")
			l.beginStop(ctx, phaseShutdown, l.shutdownGrace())

		case in, ok := <-l.conn.recv():
			if !ok {
				return errors.New("worker: transport closed unexpectedly")
			}
			if in.event != evNone {
				l.handleEvent(ctx, in.event)
				continue
			}
			done, err := l.handleFrame(ctx, in.frame)
			if done || err != nil {
				return err
			}

		case now := <-hb.C:
			l.send(typeHeartbeat, heartbeatData{
				State:              l.state,
				CurrentCPUUsage:    l.proc.cpuPercent(now),
				CurrentMemoryUsage: rssBytes(),
			})
			l.checkMasterTimeout(ctx, now)
			if l.dropped > 0 {
				l.log.Debug("frames dropped while not connected", "count", l.dropped)
				l.dropped = 0
			}

		case now := <-st.C:
			if l.peerLost {
				// The frames would be dropped (ZMQ_IMMEDIATE): keep the samples
				// for the first report after the reconnect.
				continue
			}
			l.sendStats(now)
			l.flushExceptions()

		case <-lt.C:
			l.sendLogs()

		case e := <-l.excCh:
			l.send(typeException, e)

		case <-timerC(l.readyTimer):
			if l.reg == regAsking {
				if l.everAcked {
					l.log.Debug("no ack yet, re-sending client_ready")
				} else {
					// The first registration: say at the default level that the
					// master is not there yet, and when the worker will give up.
					l.log.Info("no answer from master yet; retrying", "endpoint", l.ep.String(),
						"waited", time.Since(started).Round(time.Second), "connect_timeout", l.cfg.ConnectTimeout)
				}
				l.sendClientReady()
				l.readyTimer.Reset(l.cfg.ReadyRetryInterval)
			}

		case <-timerC(l.connTimer):
			if !l.everAcked {
				return fmt.Errorf("worker: no ack from master at %s within %v", l.ep, l.cfg.ConnectTimeout)
			}

		case <-timerC(l.afterStop):
			l.afterStop = nil
			l.phase = phaseNormal
			l.startRegistering()

		case <-l.stopDone:
			if done := l.stopFinished(); done {
				return nil
			}
		}
	}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// send encodes and queues one message. Encoding failures are bugs (the
// payloads are typed); they are logged and the message is dropped rather
// than sending anything malformed.
func (l *loop) send(typ string, data any) bool {
	frame, err := encodeMessage(typ, data, l.w.nodeID)
	if err != nil {
		l.log.Error("not sending malformed message", "type", typ, "err", err)
		return false
	}
	if err := l.conn.send(frame); err != nil {
		l.dropped++
		l.log.Debug("send failed", "type", typ, "err", err)
		return false
	}
	return true
}

// sendQuit sends quit once per registration.
func (l *loop) sendQuit() {
	if !l.quitSent {
		l.quitSent = l.send(typeQuit, nil)
	}
}

func (l *loop) sendClientReady() { l.send(typeClientReady, clientReadyVersion) }

// startRegistering sends client_ready now and every ReadyRetryInterval
// until an ack arrives.
func (l *loop) startRegistering() {
	l.quitSent = false
	l.reg = regAsking
	l.sendClientReady()
	if l.readyTimer == nil {
		l.readyTimer = time.NewTimer(l.cfg.ReadyRetryInterval)
	} else {
		l.readyTimer.Reset(l.cfg.ReadyRetryInterval)
	}
}

func (l *loop) sendStats(now time.Time) {
	rep := l.w.stats.Drain(now)
	var extras map[string]any
	if l.cfg.Extras != nil {
		extras = l.extras(now)
	}
	// Users still finishing their task after a stop count, as on Python
	// workers: a master waits for user_count 0 before it goes on (quits).
	counts := l.sched.Running()
	frame, err := encodeMessage(typeStats, statsPayload(rep, counts, extras), l.w.nodeID)
	if err != nil && extras != nil {
		l.log.Warn("stats extras not encodable; sending stats without them", "err", err)
		frame, err = encodeMessage(typeStats, statsPayload(rep, counts, nil), l.w.nodeID)
	}
	if err != nil {
		l.log.Error("not sending malformed stats", "err", err)
		return
	}
	if err := l.conn.send(frame); err != nil {
		l.dropped++
		l.log.Debug("stats not sent", "err", err)
	}
	for _, m := range l.messages(now) {
		l.send(m.Type, m.Data)
	}
}

func (l *loop) messages(now time.Time) (ms []Message) {
	if l.cfg.Messages == nil {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			l.log.Error("custom messages panicked", "panic", runner.PanicMessage(r))
			ms = nil
		}
	}()
	return l.cfg.Messages(now)
}

func (l *loop) extras(now time.Time) (m map[string]any) {
	defer func() {
		if r := recover(); r != nil {
			l.log.Error("stats extras panicked", "panic", runner.PanicMessage(r))
			m = nil
		}
	}()
	return l.cfg.Extras(now)
}

func (l *loop) flushExceptions() {
	out, dropped := l.exc.flush()
	for _, e := range out {
		l.send(typeException, e)
	}
	if dropped > 0 {
		l.log.Warn("exception messages over budget were not sent", "dropped", dropped, "budget_per_interval", exceptionBudget)
	}
}

// handleFrame handles one frame from the master. done means Run returns.
func (l *loop) handleFrame(ctx context.Context, frame []byte) (done bool, err error) {
	msg, err := decodeMessage(frame)
	if err != nil {
		l.log.Warn("ignoring malformed frame from master", "err", err, "bytes", len(frame))
		return false, nil
	}
	if msg.NodeID != l.w.nodeID {
		l.log.Debug("message for another node id", "type", msg.Type, "node_id_in_message", msg.NodeID)
	}
	switch msg.Type {
	case typeAck:
		l.handleAck(msg.Data)
	case typeHeartbeat:
		if l.reg == regAcked {
			l.reg = regHeard
		}
		l.lastHB = time.Now()
		l.verifyBy = time.Time{}
	case typeSpawn:
		l.handleSpawn(msg.Data)
	case typeStop:
		l.handleStop(ctx)
	case typeQuit:
		return l.handleQuit(ctx)
	case typeReconnect:
		return false, l.reconnect(ctx)
	default:
		if msg.Type == typeSpawningComplete {
			// 2.29+ broadcasts it when the whole ramp-up is done, the moment
			// the master resets its stats for --reset-stats.
			l.broadcasts = true
			if l.resetStats && l.phase == phaseNormal {
				l.discardStats("the master's spawning_complete with --reset-stats")
			}
		}
		// spawning_complete (2.29+ broadcast), update_user_class (2.25+)
		// and custom messages go to the embedder, if it asked for them.
		if l.cfg.OnMessage == nil {
			l.log.Debug("ignoring message", "type", msg.Type)
			return false, nil
		}
		l.cfg.OnMessage(msg.Type, msg.Data)
	}
	return false, nil
}

func (l *loop) handleAck(data any) {
	l.index = parseAckIndex(data)
	if l.reg != regAsking {
		l.log.Debug("duplicate ack", "index", l.index)
		return
	}
	l.reg = regAcked
	l.everAcked = true
	l.lastHB = time.Now()
	stopTimer(l.readyTimer)
	stopTimer(l.connTimer)
	l.log.Info("registered with master", "index", l.index, "endpoint", l.ep.String())
}

func (l *loop) handleSpawn(data any) {
	job, err := parseSpawn(data)
	if err != nil {
		l.log.Warn("ignoring malformed spawn", "err", err)
		return
	}
	if l.phase != phaseNormal {
		// The master has deleted (stop) or lost this node; replying would
		// be a message from an unknown node.
		l.log.Info("ignoring spawn while stopping")
		return
	}
	l.send(typeSpawning, nil)
	if job.Timestamp <= l.lastSpawnTS {
		l.log.Info("discarding spawn with an older or equal timestamp", "timestamp", job.Timestamp, "last", l.lastSpawnTS)
		return
	}
	l.lastSpawnTS = job.Timestamp
	l.state = stateSpawning
	for _, name := range sortedKeys(job.Targets) {
		if !l.sched.Known(name) && !l.unknownLogged[name] {
			l.unknownLogged[name] = true
			l.log.Warn("master asked for a user class this worker does not have; ignoring it", "class", name)
			if job.Targets[name] > 0 {
				l.onException(fmt.Sprintf("this worker has no user class %s: it runs 0 of the %d users the master asked for", name, job.Targets[name]),
					fmt.Sprintf("  in spawn: user class %s is not in this worker's workload\n", name))
			}
		}
	}
	l.stopTimeout = job.StopTimeout
	l.stopTimeoutSet = job.StopTimeout > 0
	l.sched.SetStopTimeout(job.StopTimeout)
	env := runner.Env{Host: job.Host, WorkerIndex: l.index, ParsedOptions: job.ParsedOptions}
	l.resetStats, _ = job.ParsedOptions["reset_stats"].(bool)
	if l.resetStats {
		// Samples of the ramp-up so far belong to the stats the master resets
		// when spawning completes. 2.12.1 sends nothing at that moment, so
		// every spawn drops what has not been reported yet (the ramp-up's tail);
		// 2.29+ masters also get the drop at their spawning_complete broadcast.
		l.discardStats("spawn with --reset-stats")
	}
	if l.cfg.OnSpawn != nil {
		l.onSpawn(env)
	}
	l.sched.Apply(job.Targets, env)
	counts := l.sched.Counts()
	cc, sum := wireCounts(counts)
	l.send(typeSpawningComplete, countsData{UserClassesCount: cc, UserCount: sum})
	l.state = stateRunning
	l.log.Info("spawned", "user_classes_count", counts, "user_count", sum)
}

func (l *loop) handleStop(ctx context.Context) {
	if l.phase != phaseNormal {
		l.log.Debug("ignoring stop while already stopping")
		return
	}
	l.log.Info("stop from master", "stop_timeout", l.stopTimeout)
	l.beginStop(ctx, phaseStopping, l.stopTimeout)
}

// handleQuit flushes the final stats at once (the master waits only 0.5 s
// after broadcasting quit), sends quit, then stops the users quickly.
func (l *loop) handleQuit(ctx context.Context) (done bool, err error) {
	l.log.Info("quit from master")
	if l.phase != phaseShutdown {
		l.finishForQuit(ctx)
	}
	l.sendStats(time.Now())
	l.flushExceptions()
	l.sendQuit()
	if l.phase == phaseShutdown {
		l.stopCancel() // hurry the stop already under way
		return false, nil
	}
	l.stopUsersNow(ctx)
	l.phase = phaseNormal
	l.state = stateReady
	if !l.cfg.WaitForNewMaster {
		return true, nil
	}
	l.log.Info("waiting for a new master")
	stopTimer(l.afterStop)
	l.afterStop = nil
	l.startRegistering()
	return false, nil
}

// reconnect recreates the socket with the same identity, as Python's
// reset_connection does; like Python it does not re-send client_ready. The dial keeps
// ctx's values but not its cancellation: a master may reset the connection while a
// shutdown (a cancelled ctx) still waits for its users.
func (l *loop) reconnect(ctx context.Context) error {
	l.log.Warn("reconnect from master: recreating the connection")
	l.conn.close(0)
	c, err := l.w.dial(context.WithoutCancel(ctx), l.ep, l.w.nodeID, l.log)
	if err != nil {
		l.conn = closedConn{}
		return fmt.Errorf("worker: reconnect to %s: %w", l.ep, err)
	}
	l.conn = c
	l.peerLost = false
	return nil
}

// handleEvent follows the connection. A disconnect alone changes nothing:
// users keep running and samples are kept, as a Python worker rides out a
// broken connection. What happens at the next session depends on whether the
// master's port was reachable all along:
//
//   - libzmq schedules one attempt after a disconnect (evRetried once); if
//     that attempt succeeds the master's listener never went away: the same
//     master, the session simply continues. Masters that answer heartbeats
//     (2.19+) must answer one within reconnectVerifyBeats heartbeats, or they
//     do not know this node after all and it re-registers.
//   - More attempts mean the port refused or timed out: the master process
//     went away, and whatever answers now is a new master (a restarted one),
//     which must get a fresh client_ready at once.
func (l *loop) handleEvent(ctx context.Context, ev peerEvent) {
	switch ev {
	case evDisconnected:
		if !l.peerLost {
			l.log.Warn("connection to master lost; users keep running")
			l.retries = 0
		}
		l.peerLost = true
	case evRetried:
		if l.peerLost {
			l.retries++
		}
	case evConnected:
		if l.peerLost {
			l.peerLost = false
			if l.retries > 1 {
				l.masterLost(ctx, fmt.Sprintf("the master's port was unreachable for %d connection attempts: a new master", l.retries-1))
				return
			}
			l.log.Warn("reconnected to the same master; users kept running")
			if l.reg == regHeard {
				l.verifyBy = time.Now().Add(reconnectVerifyBeats * l.cfg.HeartbeatInterval)
			}
			return
		}
		if l.reg == regAsking {
			l.sendClientReady() // the first one may have been dropped before the connection existed
		}
	}
}

// checkMasterTimeout applies MasterTimeout, only once the master has shown
// it sends heartbeats (2.19+) since the last ack, and the shorter check
// after a reconnect.
func (l *loop) checkMasterTimeout(ctx context.Context, now time.Time) {
	if l.reg != regHeard || l.phase != phaseNormal {
		return
	}
	if !l.verifyBy.IsZero() && now.After(l.verifyBy) {
		l.verifyBy = time.Time{}
		l.masterLost(ctx, "no heartbeat answer since the reconnect: the master does not know this node")
		return
	}
	if since := now.Sub(l.lastHB); since > l.cfg.MasterTimeout {
		l.masterLost(ctx, fmt.Sprintf("no heartbeat from master for %v", since.Round(time.Millisecond)))
	}
}

// discardStats drops the stats not reported yet, as Python's stats.reset_all
// does. Custom messages (the LLM payload) are kept: a master's reset of its
// request stats does not reset what a locustfile aggregates from them.
func (l *loop) discardStats(why string) {
	rep := l.w.stats.Drain(time.Now())
	l.log.Info("stats reset", "why", why, "dropped_requests", rep.Total.NumRequests)
}

// onSpawn runs the embedder's OnSpawn, recovering a panic.
func (l *loop) onSpawn(env runner.Env) {
	defer func() {
		if r := recover(); r != nil {
			l.log.Error("OnSpawn panicked", "panic", runner.PanicMessage(r))
		}
	}()
	l.cfg.OnSpawn(env)
}

// sendLogs sends the recent log lines to a 2.29+ master when they changed.
func (l *loop) sendLogs() {
	if l.cfg.LogLines == nil || !l.broadcasts || !l.reg.acked() || l.peerLost {
		return
	}
	lines := l.logLines()
	if len(lines) == 0 || slices.Equal(lines, l.logsSent) {
		return
	}
	if l.send(typeLogs, logsData{WorkerID: l.w.nodeID, Logs: lines}) {
		l.logsSent = lines
	}
}

func (l *loop) logLines() (lines []string) {
	defer func() {
		if r := recover(); r != nil {
			l.log.Error("LogLines panicked", "panic", runner.PanicMessage(r))
			lines = nil
		}
	}()
	lines = l.cfg.LogLines()
	if len(lines) > maxLogLines {
		lines = lines[len(lines)-maxLogLines:]
	}
	out := make([]string, len(lines))
	for i, s := range lines {
		out[i] = clean(s)
	}
	return out
}

// masterLost stops the users at once (no grace: nobody collects their
// results, and a new master must see this node ready) and re-registers
// (state ready) once they have exited.
func (l *loop) masterLost(ctx context.Context, reason string) {
	switch l.phase {
	case phaseNormal:
	case phaseStopping:
		// The stop sequence ends with client_ready anyway.
		l.log.Warn("master lost during stop", "reason", reason)
		return
	default:
		return
	}
	l.log.Warn("master lost: stopping users and re-registering", "reason", reason)
	l.broadcasts = false // the next master may be another version
	l.reg = regNone
	stopTimer(l.readyTimer)
	l.beginStop(ctx, phaseResetting, 0)
}

func (l *loop) shutdownGrace() time.Duration {
	if l.stopTimeoutSet {
		return l.stopTimeout
	}
	return l.cfg.ShutdownGrace
}

// beginStop starts stopping all users in the background; stopFinished
// runs when they are gone. If a stop is already running (e.g. a master
// stop when Run's ctx is cancelled) it keeps running and only the phase
// (what happens afterwards) changes, except that a shutdown may shorten it.
// The stop keeps ctx's values but not its cancellation: a cancelled ctx is what
// starts a shutdown, and the users still get their grace; stopCancel ends it.
func (l *loop) beginStop(ctx context.Context, p phase, grace time.Duration) {
	l.phase = p
	if l.stopDone != nil {
		if p == phaseShutdown && grace <= 0 {
			l.stopCancel()
		}
		return
	}
	stopTimer(l.afterStop)
	l.afterStop = nil
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	l.stopDone, l.stopCancel = done, cancel
	go func() {
		defer close(done)
		l.sched.StopAll(ctx, grace)
	}()
}

// stopFinished runs when the background stop is over. done means Run returns.
func (l *loop) stopFinished() (done bool) {
	l.stopCancel()
	l.stopDone, l.stopCancel = nil, nil
	now := time.Now()
	switch l.phase {
	case phaseShutdown:
		l.sendStats(now)
		l.flushExceptions()
		l.sendQuit()
		l.state = stateReady
		l.log.Info("stopped; quit sent")
		return true
	case phaseStopping:
		l.sendStats(now)
		l.send(typeClientStopped, nil)
		l.state = stateReady
		l.reg = regNone
		stopTimer(l.readyTimer)
		// Like Python: sleep stop_timeout, then client_ready.
		l.afterStop = time.NewTimer(max(l.stopTimeout, 0))
		l.log.Info("users stopped; client_stopped sent", "ready_in", l.stopTimeout)
	case phaseResetting:
		l.sendStats(now)
		l.state = stateReady
		l.phase = phaseNormal
		l.startRegistering()
	}
	return false
}

// finishForQuit stops new work and lets tasks under way end within QuitGrace,
// so streams that finish a moment after the master's quit are reported instead
// of abandoned; the rest are cancelled. It blocks the loop for at most about
// QuitGrace, well inside the 0.5 s the master waits for the final stats. The
// wait is bounded by QuitGrace, not by ctx's cancellation.
func (l *loop) finishForQuit(ctx context.Context) {
	if l.stopCancel != nil {
		l.stopCancel()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.cfg.QuitGrace+100*time.Millisecond)
	defer cancel()
	l.sched.StopAll(ctx, l.cfg.QuitGrace)
	if l.stopDone != nil {
		<-l.stopDone
		l.stopDone, l.stopCancel = nil, nil
	}
}

// stopUsersNow cancels every user at once and waits for them and for any
// background stop.
func (l *loop) stopUsersNow(ctx context.Context) {
	if l.stopCancel != nil {
		l.stopCancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	cancel() // no grace: every user is cancelled at once
	l.sched.StopAll(ctx, 0)
	if l.stopDone != nil {
		<-l.stopDone
		l.stopDone, l.stopCancel = nil, nil
	}
}

// closedConn is the conn after a failed reconnect.
type closedConn struct{}

func (closedConn) send([]byte) error    { return errConnClosed }
func (closedConn) recv() <-chan inbound { return nil }
func (closedConn) close(time.Duration)  {}
