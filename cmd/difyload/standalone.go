package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/difyload/difyload/difymock"
	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/runner"
	"github.com/difyload/difyload/workload"
)

// parseRunTime accepts Locust's -t forms: "90" (seconds), "30s", "5m", "1h30m".
func parseRunTime(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("-t %q: want e.g. 30s, 5m, 1h30m", s)
	}
	return d, nil
}

func runStandalone(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("difyload run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		uf                 userFlags
		lf                 llmFlags
		users              int
		rate               float64
		runTime, csvPrefix string
		every, grace       time.Duration
		mockFaults         string
		logf               logFlags
	)
	uf.register(fs, env)
	lf.register(fs, env)
	fs.IntVar(&users, "u", 10, "number of users (like locust -u)")
	fs.IntVar(&users, "users", 10, "number of users")
	fs.Float64Var(&rate, "r", 1, "users started per second (like locust -r)")
	fs.Float64Var(&rate, "spawn-rate", 1, "users started per second")
	fs.StringVar(&runTime, "t", "30s", "run time, e.g. 30s, 5m (like locust -t)")
	fs.StringVar(&runTime, "run-time", "30s", "run time")
	fs.StringVar(&csvPrefix, "csv", "", "write PREFIX_stats.csv and PREFIX_failures.csv at the end")
	fs.DurationVar(&every, "print-every", 2*time.Second, "print the live stats table this often (0: only at the end)")
	fs.DurationVar(&grace, "stop-timeout", 5*time.Second, "at the end, time in-flight tasks get to finish before they are cancelled")
	fs.StringVar(&mockFaults, "mock-faults", "", "with the embedded mock (no --host): fault probabilities, e.g. 429=0.05,error_event=0.02")
	logf.register(fs, env, "WARNING")
	fs.StringVar(&uf.workload, "workload", envString(env, "DIFYLOAD_WORKLOAD", ""), "workload file (.toml or .json): apps, knowledge bases, user classes; default: the built-in seed workload [env DIFYLOAD_WORKLOAD]")
	names, err := parseFlagsAndClasses(fs, args)
	if err != nil {
		return err
	}
	d, err := parseRunTime(runTime)
	if err != nil {
		return err
	}
	if users < 0 || rate <= 0 || d <= 0 {
		return errors.New("-u must be >= 0, -r and -t > 0")
	}
	logger, _, closeLog, err := logf.open(stderr)
	if err != nil {
		return err
	}
	defer closeLog()

	// Without a target, run against the embedded mock on a loopback port.
	if uf.host == "" {
		faults, err := difymock.ParseFaults(mockFaults)
		if err != nil {
			return fmt.Errorf("--mock-faults: %w", err)
		}
		ln, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("embedded mock: %w", err)
		}
		stopMock := serve(ln, difymock.New(difymock.Config{Faults: faults}), nil)
		defer func() { _ = stopMock(ctx) }()
		uf.host = "http://" + ln.Addr().String()
		fmt.Fprintf(stdout, "embedded Dify mock on %s\n", uf.host)
	}

	var wl *workload.Workload
	if uf.workload != "" {
		if wl, err = workload.Load(uf.workload); err != nil {
			return err
		}
		// The workload's SLOs apply where the flags set none.
		lf.sloTTFT = cmp.Or(lf.sloTTFT, wl.SLO.TTFT)
		lf.sloTPOT = cmp.Or(lf.sloTPOT, wl.SLO.TPOT)
		lf.sloE2E = cmp.Or(lf.sloE2E, wl.SLO.E2E)
	}
	wr, err := build(ctx, &uf, &lf, stderr)
	if err != nil {
		return err
	}
	defer wr.close()
	stats, classes := wr.served, wr.classes
	if wl != nil {
		if err := workload.Resolve(wl, env, func(name string) string { return uf.cfg.Option(nil, name) }); err != nil {
			return err
		}
		if classes, err = wr.classesFor(wl); err != nil {
			return err
		}
	}
	var weights map[string]int
	if wl == nil {
		weights = map[string]int{"ChatUser": uf.chatWeight, "RetrieveUser": uf.retrieveWeight}
	}
	if classes, err = selectClasses(classes, names, weights); err != nil {
		return err
	}
	var exMu sync.Mutex
	exceptions := map[string]int{}
	sched := runner.NewScheduler(classes, func(msg, tb string) {
		logger.Debug("user exception", "msg", msg, "traceback", tb)
		exMu.Lock()
		exceptions[msg]++
		exMu.Unlock()
	})
	total := metrics.NewCumulative()
	drain := func() { total.Add(stats.Drain(time.Now())) }

	runCtx, cancelRun := context.WithTimeout(ctx, d)
	defer cancelRun()
	fmt.Fprintf(stdout, "difyload run: %d users, spawn rate %g/s, run time %s, target %s\n", users, rate, d, uf.host)
	logger.Info("difyload run starting", "users", users, "spawn_rate", rate, "run_time", d, "host", uf.host,
		"classes", len(classes), "simple_app_key", redact(uf.simpleKey), "complex_app_key", redact(uf.complexKey),
		"dataset_key", redact(uf.datasetKey))

	// The scheduler ramps (like Locust's local runner) in a goroutine owned here; this loop
	// prints the live table and reports when the ramp is done.
	rampDone := make(chan error, 1)
	go func() { rampDone <- sched.Ramp(runCtx, users, rate, runner.Env{Host: uf.host, WorkerIndex: -1}) }()
	defer func() {
		cancelRun()
		if rampDone != nil {
			<-rampDone
		}
	}()
	var printTick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		printTick = t.C
	}
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case err := <-rampDone:
			rampDone = nil
			if err == nil {
				fmt.Fprintf(stdout, "All users spawned: %s (%d total users)\n", formatCounts(sched.Counts()), users)
			}
		case <-printTick:
			drain()
			if err := total.WriteTable(stdout); err != nil {
				return err
			}
		}
	}
	if rampDone != nil { // the run ended during the ramp: let it return before stopping users
		<-rampDone
		rampDone = nil
	}
	fmt.Fprintln(stdout, "Run time limit reached, stopping users")
	logger.Info("stopping users", "grace", grace)
	stopCtx, cancelStop := context.WithTimeout(context.WithoutCancel(ctx), grace+5*time.Second) // ctx may be done (Ctrl-C): users still get their grace
	defer cancelStop()
	sched.StopAll(stopCtx, grace)
	drain()
	if err := total.WriteTable(stdout); err != nil {
		return err
	}
	writeLLMSummary(stdout, wr.llm)
	exMu.Lock()
	for msg, n := range exceptions {
		fmt.Fprintf(stderr, "exception (%d×): %s\n", n, msg)
	}
	exMu.Unlock()
	if csvPrefix != "" {
		if err := writeCSVs(total, csvPrefix); err != nil {
			return err
		}
	}
	return wr.close()
}

func formatCounts(c map[string]int) string {
	parts := make([]string, 0, len(c))
	for name, n := range c {
		parts = append(parts, fmt.Sprintf("%q: %d", name, n))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func writeCSVs(total *metrics.Cumulative, prefix string) error {
	write := func(path string, fn func(io.Writer) error) error {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("--csv: %w", err)
		}
		if err := fn(f); err != nil {
			f.Close()
			return fmt.Errorf("--csv %s: %w", path, err)
		}
		return f.Close()
	}
	if err := write(prefix+"_stats.csv", total.WriteCSV); err != nil {
		return err
	}
	return write(prefix+"_failures.csv", total.WriteFailuresCSV)
}
