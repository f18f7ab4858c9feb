// Package runner runs simulated users: the life cycle that a Locust worker and
// a stand-alone `difyload run` share, with no Locust protocol in it.
//
// A UserClass builds Users; a Scheduler runs each user in its own goroutine
// (RunTask, then a cancellable WaitTime, again and again) and stops them the
// way Locust's runner does: a waiting user stops at once, a user inside
// RunTask may finish that task for the stop timeout, then its context is
// cancelled. Apply sets the number of users per class at once (a Locust
// master ramps, the worker applies each spawn); Ramp moves to a total at a
// rate, split like Locust's dispatcher (SplitUsers: fixed_count first, then
// SplitByWeight's weighted round robin).
//
// Panics and errors of users are reported through the Scheduler's
// onException callback as a message and a traceback that is stable (no
// goroutine ids, pointers or offsets), so the master's exception table groups
// repeats of one fault into one row.
//
// runner imports no other package of this module: worker (the Locust
// protocol) and tasks (the Dify users) import it.
package runner
