package difymock

import (
	"time"
)

// chat is the state of one app request (chat-messages, completion-messages or
// workflows/run), streaming or blocking: what was asked, the ids served, and how far the
// stream has got.
type chat struct {
	*req
	a       *app
	query   string
	user    string
	inputs  []kv
	conv    string
	msg     string
	task    string
	run     string
	endUser string
	created int64 // unix seconds (injected clock)
	newConv bool
	turn    int64

	relay    bool      // a 1.13 relayed run: first ping, job queue, relay cuts
	setupErr bool      // a setup error the relay does not report (silence)
	start    time.Time // real time the run started (after the job queue)
	holding  bool      // the run holds a job worker

	flush    func() error
	timer    *time.Timer
	nextPing time.Time // real time of the next ping; zero = no pings
	next     time.Time // real time the next answer chunk is due
	sent     int       // answer chunks sent
	firstTok time.Time // clock time of the first/last answer chunk
	lastTok  time.Time
	broken   bool            // a write failed: the client is gone
	stopCh   <-chan struct{} // closed when a stop endpoint stops this task (nil: never)
	stopped  bool            // the task was stopped: end with the stop tail
	steps    int             // nodes started (a stopped run's total_steps)
	fired    bool            // the injected fault happened

	e   enc
	buf *[]byte
}
