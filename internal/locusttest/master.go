package locusttest

// A real Locust master (internal/locustbin finds it), started and waited for
// until it listens.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/difyload/difyload/internal/locustbin"
)

// DefaultLocustfile is the locustfile written when MasterOptions gives none:
// one user class whose task a Go worker runs.
const DefaultLocustfile = `from locust import User, task


class NoopUser(User):
    @task
    def noop(self):
        pass
`

// MasterOptions says how to start a master. The zero value is a 2.12.1
// master with its web UI, DefaultLocustfile, and free loopback ports.
type MasterOptions struct {
	Version string // locustbin.V2_12 (default) or locustbin.Latest
	// Dir is the master's working directory. With locustbin.Latest it is
	// bind-mounted into the chroot, so every path the master reads or writes
	// must be below it. StartMasterT defaults it to t.TempDir(); StartMaster
	// needs it.
	Dir        string
	Files      map[string]string // written below Dir first (names relative to Dir)
	Locustfile string            // -f, relative to Dir; default locustfile.py (DefaultLocustfile if absent)
	BindHost   string            // --master-bind-host; default 127.0.0.1
	Port       int               // --master-bind-port; default a free port
	WebPort    int               // --web-port (on 127.0.0.1); default a free port
	Headless   *Headless         // nil: the web UI runs the test
	CSV        string            // --csv prefix, relative to Dir; "" writes none
	LogLevel   string            // --loglevel; "" is Locust's INFO
	Args       []string          // added last, so they override the above
	Env        []string          // added to the environment (PYTHONUNBUFFERED=1 is set)
	StopSignal syscall.Signal    // see ProcOptions; default SIGTERM (the master writes its CSVs)
	Grace      time.Duration     // see ProcOptions; default 10 s
	// StartTimeout bounds the wait for the master to listen; default 2 min.
	StartTimeout time.Duration
	// NoWait returns once the process runs, without waiting for it to listen:
	// for a master expected to fail.
	NoWait bool
	// KeepMount leaves the chroot's bind mount of Dir after the test
	// (StartMasterT, locustbin.Latest): for a Dir several tests share.
	KeepMount bool
}

// Headless is a --headless run.
type Headless struct {
	Users         int     // -u
	SpawnRate     float64 // -r; default 1
	RunTime       string  // -t; "" runs until stopped
	ExpectWorkers int     // --expect-workers; default 1
}

// Master is a running Locust master.
type Master struct {
	*Proc
	Version string
	Dir     string // absolute
	Port    int    // the workers' port
	WebPort int
}

// WebURL is the base URL of the master's web UI.
func (m *Master) WebURL() string { return "http://127.0.0.1:" + strconv.Itoa(m.WebPort) }

// Path is name (relative to Dir, e.g. a CSV file) as an absolute path.
func (m *Master) Path(name string) string { return filepath.Join(m.Dir, name) }

// StartMaster starts a master and waits until it listens on its ports (the
// web UI's too, unless headless: Headless, or --headless in Args). A master that exits first or does not
// listen within StartTimeout is stopped, and the error carries the tail of
// its log. When ctx ends, the master is stopped.
func StartMaster(ctx context.Context, o MasterOptions) (*Master, error) {
	if o.Version == "" {
		o.Version = locustbin.V2_12
	}
	if o.Dir == "" {
		return nil, errors.New("locusttest: MasterOptions.Dir is empty")
	}
	argv, err := locustbin.Command(o.Version)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	m := &Master{Version: o.Version, Dir: dir, Port: o.Port, WebPort: o.WebPort}
	for _, p := range []*int{&m.Port, &m.WebPort} {
		if *p == 0 {
			if *p, err = freePort(ctx); err != nil {
				return nil, err
			}
		}
	}
	if err := writeFiles(dir, o); err != nil {
		return nil, err
	}
	m.Proc, err = Start(ctx, ProcOptions{
		Name: "locust master " + o.Version, Argv: append(argv, masterArgs(o, m)...), Dir: dir,
		Env: append([]string{"PYTHONUNBUFFERED=1"}, o.Env...), StopSignal: o.StopSignal, Grace: o.Grace,
	})
	if err != nil || o.NoWait {
		return m, err
	}
	// What Args override (the last of a flag wins) is what the master listens on.
	host := lastFlag(o.Args, "--master-bind-host", o.BindHost)
	if host == "" || host == "*" {
		host = "127.0.0.1"
	}
	if p, err := strconv.Atoi(lastFlag(o.Args, "--master-bind-port", "")); err == nil {
		m.Port = p
	}
	if p, err := strconv.Atoi(lastFlag(o.Args, "--web-port", "")); err == nil {
		m.WebPort = p
	}
	addrs := []string{net.JoinHostPort(host, strconv.Itoa(m.Port))}
	if !o.headless() {
		addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(m.WebPort)))
	}
	if err := waitListening(ctx, m.Proc, addrs, o.StartTimeout); err != nil {
		m.Stop()
		return nil, err
	}
	return m, nil
}

// StartMasterT is StartMaster for t: the master is stopped at cleanup (and
// before t's deadline), its log tail is logged if t failed, and the chroot's
// bind mount of Dir is removed (unless KeepMount). A missing Locust skips t
// (fails it in CI, see internal/locustbin); a master that does not start
// fails it.
func StartMasterT(t testing.TB, o MasterOptions) *Master {
	t.Helper()
	if o.Version == "" {
		o.Version = locustbin.V2_12
	}
	locustbin.Require(t, o.Version)
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Version == locustbin.Latest && !o.KeepMount {
		dir, _ := filepath.Abs(o.Dir)
		t.Cleanup(func() { unmountChroot(dir) })
	}
	grace := o.Grace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	ctx, cancel := testContext(t, grace)
	m, err := StartMaster(ctx, o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stopAtCleanup(t, m.Proc, cancel)
	return m
}

// lastFlag is the value of the last flag (--flag v or --flag=v) in args, or def.
func lastFlag(args []string, flag, def string) string {
	v := def
	for i, a := range args {
		switch {
		case a == flag && i+1 < len(args):
			v = args[i+1]
		case strings.HasPrefix(a, flag+"="):
			v = a[len(flag)+1:]
		}
	}
	return v
}

// headless reports whether the master runs without its web UI (Headless, or
// --headless among Args).
func (o MasterOptions) headless() bool {
	return o.Headless != nil || slices.Contains(o.Args, "--headless")
}

func writeFiles(dir string, o MasterOptions) error {
	files := map[string]string{}
	for name, content := range o.Files {
		files[name] = content
	}
	lf := o.Locustfile
	if lf == "" {
		lf = "locustfile.py"
	}
	if _, ok := files[lf]; !ok {
		if _, err := os.Stat(filepath.Join(dir, lf)); err != nil {
			files[lf] = DefaultLocustfile
		}
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func masterArgs(o MasterOptions, m *Master) []string {
	lf := o.Locustfile
	if lf == "" {
		lf = "locustfile.py"
	}
	host := o.BindHost
	if host == "" {
		host = "127.0.0.1"
	}
	args := []string{"-f", lf, "--master", "--master-bind-host", host, "--master-bind-port", strconv.Itoa(m.Port),
		"--web-host", "127.0.0.1", "--web-port", strconv.Itoa(m.WebPort)}
	if h := o.Headless; h != nil {
		rate, expect := h.SpawnRate, h.ExpectWorkers
		if rate == 0 {
			rate = 1
		}
		if expect == 0 {
			expect = 1
		}
		args = append(args, "--headless", "-u", strconv.Itoa(h.Users), "-r", strconv.FormatFloat(rate, 'f', -1, 64),
			"--expect-workers", strconv.Itoa(expect))
		if h.RunTime != "" {
			args = append(args, "-t", h.RunTime)
		}
	}
	if o.CSV != "" {
		args = append(args, "--csv", o.CSV)
	}
	if o.LogLevel != "" {
		args = append(args, "--loglevel", o.LogLevel)
	}
	return append(args, o.Args...)
}

// waitListening waits until every addr accepts a TCP connection, p exits,
// timeout (default 2 min) passes, or ctx ends.
func waitListening(ctx context.Context, p *Proc, addrs []string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	var d net.Dialer
	for _, addr := range addrs {
		for {
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			c, err := d.DialContext(dctx, "tcp", addr)
			cancel()
			if err == nil {
				c.Close()
				break
			}
			switch {
			case p.Exited():
				return fmt.Errorf("%s exited (code %d) before listening on %s; last lines of its log:\n%s",
					p.Name(), p.cmd.ProcessState.ExitCode(), addr, p.Tail(30))
			case ctx.Err() != nil:
				return fmt.Errorf("%s: waiting for %s: %w", p.Name(), addr, ctx.Err())
			case time.Now().After(deadline):
				return fmt.Errorf("%s does not listen on %s after %v; last lines of its log:\n%s",
					p.Name(), addr, timeout, p.Tail(30))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// unmountChroot removes scripts/locust-latest.sh's bind mount of dir (best
// effort: there is none if the master never started).
func unmountChroot(dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = exec.CommandContext(ctx, "umount", "-l", filepath.Join(locustbin.ChrootRoot(), dir)).Run()
}
