package runner

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// Scheduler runs users: one goroutine per user, looping RunTask → WaitTime
// until stopped. It is used by Worker (targets from the master's spawn
// messages) and stand-alone by `difyload run` (targets from SplitByWeight,
// ramped with Ramp).
//
// Stopping mirrors Locust's Runner.stop_users / User.stop: a user that is
// waiting stops at once; a user inside RunTask finishes that task if a stop
// timeout is set, and its context is cancelled when the timeout expires; with
// no stop timeout the context is cancelled at once.
//
// A Scheduler is safe for concurrent use. Every user goroutine it starts is
// owned by it and ends after StopAll (provided RunTask honours its ctx).
type Scheduler struct {
	onException func(msg, traceback string)

	mu          sync.Mutex
	classes     []UserClass // sorted by name
	byName      map[string]UserClass
	live        map[string][]*userRun // running users per class, oldest first
	all         map[*userRun]struct{} // every goroutine not yet exited (live + stopping)
	stopTimeout time.Duration
	nextID      int
}

// userRun is the control block of one user goroutine.
type userRun struct {
	class    string
	soft     chan struct{} // closed: stop after the current task
	softOnce sync.Once
	ctx      context.Context // hard-stop context passed to RunTask
	cancel   context.CancelFunc
	done     chan struct{} // closed when the goroutine has exited

	mu    sync.Mutex
	timer *time.Timer // pending hard cancel after the stop timeout
}

func (u *userRun) softStop() { u.softOnce.Do(func() { close(u.soft) }) }

// stop asks the user to stop: at once when grace <= 0, else after its
// current task, with a hard cancel when grace expires.
func (u *userRun) stop(grace time.Duration) {
	u.softStop()
	if grace <= 0 {
		u.cancel()
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.timer == nil {
		u.timer = time.AfterFunc(grace, u.cancel)
	}
}

// finish runs when the goroutine exits.
func (u *userRun) finish() {
	u.mu.Lock()
	if u.timer != nil {
		u.timer.Stop()
	}
	u.mu.Unlock()
	u.cancel()
	close(u.done)
}

// NewScheduler returns a Scheduler for classes. onException (may be nil)
// receives panics and errors from RunTask and NewUser; it is called from user
// goroutines and must not block.
func NewScheduler(classes []UserClass, onException func(msg, traceback string)) *Scheduler {
	cs := append([]UserClass(nil), classes...)
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Name() < cs[j].Name() })
	s := &Scheduler{
		classes:     cs,
		byName:      make(map[string]UserClass, len(cs)),
		onException: onException,
		live:        make(map[string][]*userRun, len(cs)),
		all:         map[*userRun]struct{}{},
	}
	for _, c := range cs {
		s.byName[c.Name()] = c
	}
	return s
}

// SetStopTimeout sets the grace period for users stopped by a later Apply
// (ramp down); the worker sets it from each spawn's stop_timeout. 0 (the
// default) cancels stopped users at once, like Locust without
// --stop-timeout.
func (s *Scheduler) SetStopTimeout(d time.Duration) {
	s.mu.Lock()
	s.stopTimeout = max(d, 0)
	s.mu.Unlock()
}

// Known reports whether the scheduler has a class called name.
func (s *Scheduler) Known(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.byName[name]
	return ok
}

// SetClasses replaces the user classes (a workload the master sent). Users of classes
// that are gone are stopped with the stop timeout; users of classes that stay keep
// running until the next Apply changes their count.
func (s *Scheduler) SetClasses(classes []UserClass) {
	cs := append([]UserClass(nil), classes...)
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Name() < cs[j].Name() })
	s.mu.Lock()
	defer s.mu.Unlock()
	byName := make(map[string]UserClass, len(cs))
	for _, c := range cs {
		byName[c.Name()] = c
	}
	for name, users := range s.live {
		if _, keep := byName[name]; keep {
			continue
		}
		for i := len(users) - 1; i >= 0; i-- {
			users[i].stop(s.stopTimeout)
		}
		delete(s.live, name)
	}
	s.classes, s.byName = cs, byName
}

// Apply makes the number of running users of each class in targets equal to
// its target, now: it starts the missing users (all at once; the master does
// the ramping) and stops the surplus, newest first, with the stop timeout.
// Classes absent from targets are left alone; unknown class names are
// ignored. Stopped users no longer count in Counts even while they finish
// their last task.
func (s *Scheduler) Apply(targets map[string]int, env Env) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(targets)) {
		cls, ok := s.byName[name]
		if !ok {
			continue
		}
		target := max(targets[name], 0)
		cur := s.live[name]
		switch {
		case target > len(cur):
			for range target - len(cur) {
				if u := s.startLocked(cls, env); u != nil {
					cur = append(cur, u)
				}
			}
		case target < len(cur):
			victims := cur[target:]
			for i := len(victims) - 1; i >= 0; i-- {
				victims[i].stop(s.stopTimeout)
			}
			clear(victims)
			cur = cur[:target]
		}
		s.live[name] = cur
	}
}

// startLocked creates and starts one user of cls; nil if NewUser failed.
func (s *Scheduler) startLocked(cls UserClass, env Env) *userRun {
	s.nextID++
	id := s.nextID
	user, err := newUserSafely(cls, id, env)
	if err != nil {
		s.report(fmt.Sprintf("%s.NewUser: %v", cls.Name(), err), fmt.Sprintf("  in %s.NewUser: returned an error\n", cls.Name()))
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	u := &userRun{
		class:  cls.Name(),
		soft:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	s.all[u] = struct{}{}
	go s.runUser(u, user)
	return u
}

func newUserSafely(cls UserClass, id int, env Env) (u User, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %s", PanicMessage(r))
		}
	}()
	u, err = cls.NewUser(id, env)
	if err == nil && u == nil {
		err = fmt.Errorf("NewUser returned a nil User")
	}
	return u, err
}

// runUser is the body of one user goroutine.
func (s *Scheduler) runUser(u *userRun, user User) {
	defer func() {
		s.mu.Lock()
		delete(s.all, u)
		s.mu.Unlock()
		u.finish()
	}()
	for {
		select {
		case <-u.soft:
			return
		default:
		}
		s.runTaskSafely(u.ctx, u.class, user)
		select {
		case <-u.soft:
			return
		default:
		}
		if d := s.waitTimeSafely(u.class, user); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-u.soft:
				t.Stop()
				return
			}
		}
	}
}

// runTaskSafely runs one task, reporting a panic or an error (unless the
// hard-stop context was cancelled, which makes errors expected).
func (s *Scheduler) runTaskSafely(ctx context.Context, class string, user User) {
	defer func() {
		if r := recover(); r != nil {
			s.report(PanicMessage(r), panicTraceback(stackNow()))
		}
	}()
	if err := user.RunTask(ctx); err != nil && ctx.Err() == nil {
		s.report(err.Error(), errorTraceback(class, err))
	}
}

func (s *Scheduler) waitTimeSafely(class string, user User) (d time.Duration) {
	defer func() {
		if r := recover(); r != nil {
			s.report(PanicMessage(r), panicTraceback(stackNow()))
			d = time.Second // avoid a hot loop on a broken WaitTime
		}
	}()
	return user.WaitTime()
}

func (s *Scheduler) report(msg, tb string) {
	if s.onException != nil {
		s.onException(msg, tb)
	}
}

// Counts returns the running users per class, every class included (zeros
// too). Users being stopped are not counted.
func (s *Scheduler) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.classes)+len(s.live))
	for _, c := range s.classes {
		out[c.Name()] = len(s.live[c.Name()])
	}
	return out
}

// Running returns the users whose goroutine has not exited yet per class,
// every class included: running users plus users that were stopped and are
// still finishing their task.
func (s *Scheduler) Running() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.classes))
	for _, c := range s.classes {
		out[c.Name()] = 0
	}
	for u := range s.all {
		out[u.class]++
	}
	return out
}

// StopAll stops every user: new work stops at once (waits are interrupted,
// no new task starts), running tasks may finish for up to grace, then their
// contexts are cancelled. Cancelling ctx cancels them at once. It returns
// when every user goroutine that existed at the call (including users still
// finishing after a ramp down) has exited.
func (s *Scheduler) StopAll(ctx context.Context, grace time.Duration) {
	s.mu.Lock()
	users := make([]*userRun, 0, len(s.all))
	for u := range s.all {
		users = append(users, u)
	}
	for name := range s.live {
		s.live[name] = nil
	}
	s.mu.Unlock()

	for _, u := range users {
		u.softStop()
		if grace <= 0 {
			u.cancel()
		}
	}
	hard := func() {
		for _, u := range users {
			u.cancel()
		}
	}
	var expired <-chan time.Time
	if grace > 0 {
		t := time.NewTimer(grace)
		defer t.Stop()
		expired = t.C
	}
	done := ctx.Done()
	for _, u := range users {
		for waiting := true; waiting; {
			select {
			case <-u.done:
				waiting = false
			case <-expired:
				expired = nil
				hard()
			case <-done:
				done = nil
				hard()
			}
		}
	}
}

// Ramp moves the total number of users to users at rate users per second,
// split by weight like Locust's local runner: each step adds (or removes)
// max(1, floor(rate)) users and waits step/rate seconds. rate <= 0 applies
// the target at once. It returns ctx.Err() if ctx ends first (the users
// started so far keep running).
func (s *Scheduler) Ramp(ctx context.Context, users int, rate float64, env Env) error {
	users = max(users, 0)
	cur := 0
	for _, n := range s.Counts() {
		cur += n
	}
	if rate <= 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		s.Apply(SplitUsers(s.snapshotClasses(), users), env)
		return nil
	}
	step := max(1, int(math.Floor(rate)))
	delay := time.Duration(float64(step) / rate * float64(time.Second))
	for cur != users {
		if cur < users {
			cur = min(cur+step, users)
		} else {
			cur = max(cur-step, users)
		}
		s.Apply(SplitUsers(s.snapshotClasses(), cur), env)
		if cur == users {
			break
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func (s *Scheduler) snapshotClasses() []UserClass {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.classes
}

// FixedCounter is a UserClass with Locust's fixed_count: that many users whatever the
// total (as far as the total allows), before the weighted classes get the rest.
type FixedCounter interface {
	FixedCount() int
}

// SplitUsers splits users like Locust's dispatcher with fixed_count: classes with a
// positive FixedCount (FixedCounter) get theirs first, in name order, as far as users
// allows; the rest goes to the other classes by weight (SplitByWeight). Every class appears
// in the result, zeros included.
func SplitUsers(classes []UserClass, users int) map[string]int {
	out := map[string]int{}
	var weighted []UserClass
	fixed := append([]UserClass(nil), classes...)
	sort.SliceStable(fixed, func(i, j int) bool { return fixed[i].Name() < fixed[j].Name() })
	left := max(users, 0)
	for _, c := range fixed {
		fc, ok := c.(FixedCounter)
		if !ok || fc.FixedCount() <= 0 {
			weighted = append(weighted, c)
			continue
		}
		n := min(fc.FixedCount(), left)
		out[c.Name()] = n
		left -= n
	}
	for name, n := range SplitByWeight(weighted, left) {
		out[name] = n
	}
	return out
}

// SplitByWeight splits users over classes by weight the way Locust's
// dispatcher does (2.2x+ _kl_generator, classes sorted by name): the first
// `users` picks of a Kullback-Leibler-divergence weighted round robin. For
// weights 3 and 1 and 4 users that is {3, 1}; each result is a prefix of
// the next, so ramping up never stops a user. Weight <= 0 counts as 1.
// Every class appears in the result, zeros included.
func SplitByWeight(classes []UserClass, users int) map[string]int {
	type slot struct {
		key, x, w float64
		name      string
	}
	out := make(map[string]int, len(classes))
	slots := make([]slot, 0, len(classes))
	for _, c := range classes {
		name := c.Name()
		if _, dup := out[name]; dup {
			continue
		}
		out[name] = 0
		w := float64(c.Weight())
		if w <= 0 {
			w = 1
		}
		slots = append(slots, slot{key: w * math.Log2(w/(w+1)), x: w + 1, w: w, name: name})
	}
	if len(slots) == 0 {
		return out
	}
	less := func(a, b slot) bool { // Python tuple order (key, x, weight, name)
		switch {
		case a.key != b.key:
			return a.key < b.key
		case a.x != b.x:
			return a.x < b.x
		case a.w != b.w:
			return a.w < b.w
		}
		return a.name < b.name
	}
	for range max(users, 0) {
		best := 0
		for i := 1; i < len(slots); i++ {
			if less(slots[i], slots[best]) {
				best = i
			}
		}
		b := &slots[best]
		out[b.name]++
		b.key = b.w * math.Log2(b.x/(b.x+1))
		b.x++
	}
	return out
}
