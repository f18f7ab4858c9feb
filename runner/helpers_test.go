package runner

import (
	"context"
	"sync"
	"time"
)

// testClass is a UserClass whose users run task.
type testClass struct {
	name    string
	weight  int
	wait    time.Duration
	task    func(ctx context.Context, id int, env Env) error
	newErr  error
	mu      sync.Mutex
	envs    []Env
	created int
}

func (c *testClass) Name() string { return c.name }
func (c *testClass) Weight() int  { return c.weight }
func (c *testClass) NewUser(id int, env Env) (User, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.newErr != nil {
		return nil, c.newErr
	}
	c.envs = append(c.envs, env)
	c.created++
	return &testUser{c: c, id: id, env: env}, nil
}

type testUser struct {
	c   *testClass
	id  int
	env Env
}

func (u *testUser) RunTask(ctx context.Context) error {
	if u.c.task == nil {
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
		return nil
	}
	return u.c.task(ctx, u.id, u.env)
}

func (u *testUser) WaitTime() time.Duration { return u.c.wait }
