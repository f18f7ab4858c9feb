package worker

// The Locust messages, both directions: the worker's states and the message
// types. outbound.go builds every frame the worker sends, inbound.go decodes
// and parses every frame from the master; docs/locust-protocol.md has the
// rules both follow.

// Worker states as the master expects them in heartbeats (exactly these).
const (
	stateReady    = "ready"
	stateSpawning = "spawning"
	stateRunning  = "running"
)

// Message types.
const (
	typeClientReady      = "client_ready"
	typeHeartbeat        = "heartbeat"
	typeStats            = "stats"
	typeSpawning         = "spawning"
	typeSpawningComplete = "spawning_complete"
	typeClientStopped    = "client_stopped"
	typeQuit             = "quit"
	typeException        = "exception"
	typeLogs             = "logs" // 2.29+: the master's Logs tab

	typeAck       = "ack"
	typeSpawn     = "spawn"
	typeStop      = "stop"
	typeReconnect = "reconnect"
)

// clientReadyVersion is what client_ready carries: int -1, which every
// master accepts silently (a str would be compared with the master's
// version; Debian 2.12.1 rejects its own empty version string).
const clientReadyVersion = -1
