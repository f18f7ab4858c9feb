// Package worker is a Locust worker in Go: it joins an unmodified Python
// Locust master (tested against Debian's 2.12.1 and 2.46.7) over ZeroMQ and
// runs any runner.UserClass (the Dify users of tasks/ in difyload) on a
// runner.Scheduler. It owns only the Locust protocol, in files grouped by
// direction: message.go (states and message types), inbound.go (decoding and
// parsing what the master sends; framesize.go its size limits per message
// type), outbound.go (building what the worker
// sends), worker.go (the loop and its states) and the transport
// (transport*.go, zmqwait*.go). The users' life cycle is runner's, which
// `difyload run` uses without this package. The protocol facts it relies on
// are written down in docs/locust-protocol.md.
//
// # Transport
//
// A DEALER socket (goczmq, build tag goczmq; without the tag Run returns
// ErrNoZeroMQ) connects to tcp://MasterHost:MasterPort with ZMQ_IDENTITY =
// node id = the node_id of every message (Python's host_uuid4hex by default),
// TCP_KEEPALIVE=1, TCP_KEEPALIVE_IDLE=30 like Locust, and ZMQ_IPV6 when the
// master host is an IPv6 literal (or resolves only to IPv6). One goroutine
// owns the socket; the protocol loop talks to it through channels. It never
// blocks in cgo: it sleeps in Go, waiting on a dup of each socket's ZMQ_FD
// in Go's network poller (zmqwait.go), and reads ZMQ_EVENTS after every
// wake, send and receive; an idle worker wakes only for protocol traffic.
// While users run it also wakes every 2 ms (transport_zmq.go says why).
// Frames are sent with ZMQ_IMMEDIATE=1 and DONTWAIT: while no master
// is connected they are dropped, never queued for whatever master connects
// next. A libzmq socket monitor (zmq_socket_monitor via cgo; goczmq has no
// monitor API) reports HANDSHAKE_SUCCEEDED and DISCONNECTED.
//
// # Messages
//
// Every frame is a msgpack array of exactly 3, [type str, data, node_id str],
// built by one encoder (encodeMessage) from typed payloads: strings are
// msgpack str and valid UTF-8, response_times / num_reqs_per_sec /
// num_fail_per_sec have int keys and are never nil, timestamps are float64,
// None is sent where Python has None (min_response_time and
// last_request_timestamp of an empty interval), and every mandatory key is
// present. Incoming frames are decoded by a hand-written, bounded decoder;
// anything malformed or unexpected is logged and ignored.
//
//	client_ready  -1, at start and every ReadyRetryInterval until "ack"
//	              (also at once when the transport reports a connection)
//	heartbeat     {"state", "current_cpu_usage" (float %), "current_memory_usage" (int RSS)} every second
//	stats         {"stats", "stats_total", "errors", "user_classes_count", "user_count"} (+ Extras)
//	              every StatsInterval in every state while connected, and at stop, master loss
//	              and quit; the counts include users still finishing their task after a stop
//	logs          {"worker_id", "logs"}: Config.LogLines every 10 s when they changed, only to
//	              masters that broadcast spawning_complete (2.29+, which have a Logs tab)
//	spawning      nil, first reply to every spawn (also a stale one)
//	spawning_complete {"user_classes_count": every class incl. zeros, "user_count": sum}
//	client_stopped nil, after a stop
//	exception     {"msg", "traceback"}: a panic in RunTask or a non-nil error
//	quit          nil, on master quit and on shutdown
//
// current_cpu_usage is the share of the CPU the worker may use: CPU time over wall time ×
// GOMAXPROCS, so 100 means all its cores are busy and the master's 90 % warning means
// saturated (psutil's per-core figure would fire at about one core of a multi-core worker).
//
// Error entries carry first_seen/last_seen (2.44+). 2.12.1 ignores them:
// StatsError.unserialize reads only method, name, error and occurrences.
//
// # States
//
// The heartbeat state is exactly "ready" (idle, stopping, re-registering),
// "spawning" (applying a spawn) or "running" (at target). Spawn handling is
// synchronous: the targets are absolute per class; missing users start at
// once (the master does the ramping) and surplus users stop newest first.
// A spawn whose timestamp is <= the last accepted one gets "spawning" and is
// dropped, like Python. Stopped users leave the counts at once and may finish
// their current task for up to stop_timeout (nil → 0: cancelled at once).
//
//	          ack             spawn                 spawn (±)
//	ready ──────────► ready ─────► spawning ──► running ◄─────┐
//	  ▲                                            │  └────────┘
//	  │ client_ready after sleep(stop_timeout)      │ stop
//	  └── client_stopped ◄── users stopped ◄────────┘
//
// stop: no new task starts, waits end, running tasks get stop_timeout, then
// their context is cancelled; stats are flushed, client_stopped is sent
// (the master deletes the node), the state becomes ready, the worker sleeps
// stop_timeout and sends client_ready again until acked. Spawns that arrive
// meanwhile are ignored without a reply (the master no longer knows us, and a
// spawning from an unknown node kills the listener of masters ≤ 2.14).
//
// quit: the final stats are sent at once (the master waits only 0.5 s), then
// quit, then users are cancelled. Run returns nil, or with WaitForNewMaster
// the worker goes back to ready and re-registers.
//
// Run's ctx cancelled (SIGTERM in main): a two-stage stop with the master's
// last positive stop_timeout, else Config.ShutdownGrace (default 5 s), then
// final stats, quit, and Run returns nil.
//
// # Losing the master
//
// The worker tolerates what a Python worker tolerates and recognises a new master:
//
//   - Master heartbeats (2.19+ reply to every heartbeat) may stop for MasterTimeout
//     (60 s, Python's MASTER_HEARTBEAT_TIMEOUT) before the master counts as lost; this
//     applies only if a reply arrived since the last ack, so 2.12.1 masters (which never
//     send any) are not affected. A lost master: users stop at once, the state goes back
//     to ready and client_ready is re-sent until acked, without a process restart (a
//     Python worker exits instead).
//   - A disconnect alone changes nothing: users keep running, and stats are not drained
//     while the connection is down (the frames would be dropped), so the samples reach the
//     master after the reconnect. The socket monitor's events decide what the next session
//     is. libzmq schedules one connection attempt after a disconnect (CONNECT_RETRIED); if
//     it succeeds, the master's port never went away: the same master, and the session
//     goes on. A 2.19+ master must then answer a heartbeat within 5 heartbeat intervals,
//     or it does not know this node and the worker re-registers. More attempts mean the
//     port refused or timed out: the master process was gone, whatever answers now is a
//     new master, and the worker re-registers at once (this is what catches a restarted
//     2.12.1 master, and a restarted 2.46 master within a second).
//
// --reset-stats: a spawn whose parsed_options have reset_stats drops the stats recorded and
// not yet reported, and so does a 2.29+ master's spawning_complete broadcast, which comes
// when the master resets (custom messages are kept, as the master keeps what its
// locustfile aggregated).
//
// ConnectTimeout bounds only the first registration: with no ack at all
// since Run started, Run returns an error (meanwhile every retry of
// client_ready logs "no answer from master yet; retrying" at info level). After the first ack the worker
// waits for a master forever.
//
// reconnect (sent by a master after an undecodable frame): the socket is
// recreated with the same identity and, like Python, client_ready is not
// re-sent.
//
// # Exceptions
//
// A panic in RunTask is recovered by runner.Scheduler; the user continues
// after its wait. The traceback is the Go stack between the panic and the
// scheduler, outermost
// first, formatted like Python's format_tb ("  File "f.go", line 9, in
// pkg.Func"), without goroutine ids, arguments or offsets, so identical
// panics group under one master row (the master keys rows by
// hash(traceback)). An error returned by RunTask (unless its ctx was
// cancelled) is an exception with msg = err.Error() and a traceback naming
// the class and the error type chain. At most 100 exception messages are
// sent per stats interval: the first of each traceback at once, repeats as
// identical messages at the interval's end (so the master's count stays
// exact below the budget), the rest dropped and logged.
//
// # User classes from the master
//
// The classes may change between tests: Config.OnMessage receives the
// master's custom messages (a workload, sent before the spawn it applies to)
// and Worker.SetClasses replaces the classes there; users of classes that
// are gone stop. A spawn that asks for a class the worker does not have is
// logged and reported once to the Exceptions tab (the master would otherwise
// wait for users that never come); Worker.ReportException sends the
// embedder's own entries.
//
// # Frame limits
//
// A frame from the master may be up to 16 MiB (protocol frames are a few KiB),
// except the difyload_workload message, which inlines its query datasets and
// may be up to 1 GiB (the master refuses more than 512 MiB of datasets). The
// limit is chosen by the message type at the frame's head, before the rest is
// decoded; a frame over its limit is logged with its type and size and
// dropped, and the worker carries on.
package worker
