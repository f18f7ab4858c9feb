package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/worker"
)

func runWorker(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("difyload worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		uf               userFlags
		lf               llmFlags
		cfg              worker.Config
		logf             logFlags
		err              error
		connect, grace   time.Duration
		masterTimeout    time.Duration
		waitForNewMaster bool
	)
	uf.register(fs, env)
	lf.register(fs, env)
	port, err := envInt(env, "LOCUST_MASTER_NODE_PORT", 5557)
	if err != nil {
		return err
	}
	fs.StringVar(&cfg.MasterHost, "master-host", envString(env, "LOCUST_MASTER_NODE_HOST", "127.0.0.1"), "Locust master host [env LOCUST_MASTER_NODE_HOST]")
	fs.IntVar(&cfg.MasterPort, "master-port", port, "Locust master port [env LOCUST_MASTER_NODE_PORT]")
	fs.StringVar(&cfg.NodeID, "node-id", envString(env, "DIFYLOAD_NODE_ID", ""), "worker node id (default hostname_uuid) [env DIFYLOAD_NODE_ID]")
	fs.DurationVar(&connect, "connect-timeout", 5*time.Minute, "give up (exit 1) when the master has not answered for this long at start")
	fs.DurationVar(&masterTimeout, "master-timeout", 60*time.Second, "re-register when a master that sends heartbeats (2.19+) goes quiet this long (Python workers quit after 60s)")
	fs.DurationVar(&grace, "stop-grace", 5*time.Second, "on SIGTERM/SIGINT: time in-flight tasks get to finish before they are cancelled")
	fs.BoolVar(&waitForNewMaster, "wait-for-new-master", envBool(env, "DIFYLOAD_WAIT_FOR_NEW_MASTER"), "on the master's quit, wait for a new master instead of exiting [env DIFYLOAD_WAIT_FOR_NEW_MASTER]")
	logf.register(fs, env, "INFO")
	names, err := parseFlagsAndClasses(fs, args)
	if err != nil {
		return err
	}
	logger, ring, closeLog, err := logf.open(stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	wr, err := build(ctx, &uf, &lf, stderr)
	if err != nil {
		return err
	}
	defer wr.close()
	classes, err := selectClasses(wr.classes, names, nil)
	if err != nil {
		return err
	}
	cfg.Messages = wr.llmMessages
	cfg.OnSpawn = wr.opts.onSpawn
	cfg.LogLines = ring.Lines
	sw := &classSwitch{wr: wr, log: logger, current: classes, only: names}
	cfg.OnMessage = sw.onMessage
	cfg.ConnectTimeout = connect
	cfg.MasterTimeout = masterTimeout
	cfg.ShutdownGrace = grace
	cfg.WaitForNewMaster = waitForNewMaster
	cfg.Logger = logger
	logger.Info("difyload worker starting",
		"master", fmt.Sprintf("%s:%d", cfg.MasterHost, cfg.MasterPort),
		"host_override", uf.host,
		"simple_app_key", redact(uf.simpleKey), "complex_app_key", redact(uf.complexKey),
		"dataset_key", redact(uf.datasetKey))
	w, err := worker.New(cfg, classes, wr.served)
	if err != nil {
		return err
	}
	sw.w = w
	return errors.Join(w.Run(ctx), wr.close())
}

// llmMessages sends the LLM payload as a Locust custom message after every stats report,
// to masters whose locustfile registered it (the interval is drained either way).
func (w *wiring) llmMessages(now time.Time) []worker.Message {
	data := w.llm.Drain(now)
	if !w.opts.llm.Load() {
		return nil
	}
	return []worker.Message{{Type: metrics.LLMMessageType, Data: data}}
}
