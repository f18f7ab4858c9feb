package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/difyload/difyload/worker"
)

func runWorker(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("difyload worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		uf               userFlags
		lf               llmFlags
		cfg              worker.Config
		logLevel         string
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
	fs.DurationVar(&masterTimeout, "master-timeout", 5*time.Second, "re-register when a master that sends heartbeats goes quiet this long")
	fs.DurationVar(&grace, "stop-grace", 5*time.Second, "on SIGTERM/SIGINT: time in-flight tasks get to finish before they are cancelled")
	fs.BoolVar(&waitForNewMaster, "wait-for-new-master", envBool(env, "DIFYLOAD_WAIT_FOR_NEW_MASTER"), "on the master's quit, wait for a new master instead of exiting [env DIFYLOAD_WAIT_FOR_NEW_MASTER]")
	fs.StringVar(&logLevel, "log-level", envString(env, "DIFYLOAD_LOG_LEVEL", "info"), "debug, info, warn or error [env DIFYLOAD_LOG_LEVEL]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	logger, err := newLogger(stderr, logLevel)
	if err != nil {
		return err
	}
	wr, err := build(ctx, &uf, &lf, stderr)
	if err != nil {
		return err
	}
	defer wr.close()
	cfg.Messages = wr.llmMessages
	sw := &classSwitch{wr: wr, log: logger, current: wr.classes}
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
	w, err := worker.New(cfg, wr.classes, wr.stats)
	if err != nil {
		return err
	}
	sw.w = w
	return errors.Join(w.Run(ctx), wr.close())
}
