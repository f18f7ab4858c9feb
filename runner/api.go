package runner

import (
	"context"
	"time"
)

// UserClass is a Locust user class implemented elsewhere (tasks/). The
// worker runs any number of users of each class; the master decides how many.
type UserClass interface {
	// Name is the Locust class name the master uses in user_classes_count,
	// e.g. "ChatUser". It must match the class name in the master's locustfile.
	Name() string
	// Weight is used only for stand-alone splitting (SplitByWeight);
	// values <= 0 are treated as 1. The worker never mutates it.
	Weight() int
	// NewUser builds one simulated user. id is unique within a Scheduler.
	// An error is reported as an exception and the user is not started.
	NewUser(id int, env Env) (User, error)
}

// User is one simulated user. Each user runs in its own goroutine: RunTask,
// then a cancellable wait of WaitTime, then RunTask again, until stopped.
type User interface {
	// RunTask runs one task iteration. ctx is the hard-stop context: it is
	// cancelled when the user must stop at once (stop_timeout expired, quit,
	// process shutdown). A panic is recovered and reported as an exception;
	// so is a non-nil error unless ctx was already cancelled.
	RunTask(ctx context.Context) error
	// WaitTime is the pause after each task; 0 is allowed. It is interrupted
	// at once when the user is stopped.
	WaitTime() time.Duration
}

// Env is what a spawn message tells a user about the test.
type Env struct {
	// Host is the spawn's host ("" when the master sent nil, i.e. the
	// class default applies).
	Host string
	// WorkerIndex is the index the master gave this worker in its ack
	// (0, 1, …; -1 when unknown or stand-alone). Users use it to shard data
	// and to make Dify user ids unique across workers.
	WorkerIndex int
	// ParsedOptions is the master's parsed_options, decoded from msgpack:
	// string, int64, float64, bool, nil, []any, map[string]any and []byte
	// values. nil in stand-alone mode unless the caller sets it.
	ParsedOptions map[string]any
}
