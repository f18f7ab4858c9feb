package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/difyload/difyload/difymock"
)

func runMock(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("difyload mock", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg        difymock.Config
		addr       string
		faults     string
		allowNonLo bool
	)
	fs.StringVar(&addr, "addr", envString(env, "DIFYLOAD_MOCK_ADDR", "127.0.0.1:5001"), "listen address [env DIFYLOAD_MOCK_ADDR]")
	fs.DurationVar(&cfg.TTFT, "ttft", 200*time.Millisecond, "time to the first answer token")
	fs.DurationVar(&cfg.TokenDelay, "token-delay", 20*time.Millisecond, "delay between answer tokens")
	fs.IntVar(&cfg.Tokens, "tokens", 20, "answer tokens per chat")
	fs.DurationVar(&cfg.Jitter, "jitter", 0, "uniform ± jitter on every delay")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", 10*time.Second, "keep-alive `event: ping` interval")
	fs.DurationVar(&cfg.RetrievalLatency, "retrieval-latency", 50*time.Millisecond, "latency of /retrieve")
	fs.StringVar(&faults, "faults", envString(env, "DIFYLOAD_MOCK_FAULTS", ""), "fault probabilities per request, e.g. 429=0.05,error_event=0.02 [env DIFYLOAD_MOCK_FAULTS]")
	fs.StringVar(&cfg.DifyVersion, "dify-version", envString(env, "DIFYLOAD_MOCK_DIFY_VERSION", difymock.DefaultDifyVersion), "Dify release whose wire to speak: 1.9 … 1.12 (inline streaming), 1.13.0, 1.13.x (relayed chatflow/workflow runs) [env DIFYLOAD_MOCK_DIFY_VERSION]")
	fs.IntVar(&cfg.JobWorkers, "job-workers", 0, "job workers for relayed runs (Dify's CELERY_WORKER_AMOUNT; its docker default is 1); past them relayed runs queue FIFO in silence after their first ping; 0 = unlimited")
	fs.IntVar(&cfg.APISlots, "api-slots", 0, "requests the API process serves at once (gunicorn workers × worker connections); past them requests wait before any response byte; 0 = unlimited")
	fs.IntVar(&cfg.MaxConversations, "max-conversations", 0, "conversations remembered for conversation_id reuse (oldest forgotten: a later turn of a forgotten one is an unknown conversation); 0 = 100000, < 0 = unlimited")
	fs.IntVar(&cfg.MaxActiveRequests, "max-active-requests", 0, "per-app concurrency limit (Dify's APP_MAX_ACTIVE_REQUESTS): past it 400 invalid_param \"Too many requests…\"; 0 = unlimited")
	fs.BoolVar(&allowNonLo, "allow-non-loopback", envBool(env, "DIFYLOAD_MOCK_ALLOW_NON_LOOPBACK"), "allow binding a non-loopback address (containers) [env DIFYLOAD_MOCK_ALLOW_NON_LOOPBACK]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var err error
	if cfg.Faults, err = difymock.ParseFaults(faults); err != nil {
		return fmt.Errorf("--faults: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "difyload mock: Dify %s-compatible API on http://%s/v1 (truth at /_mock/stats)\n", cfg.DifyVersion, addr)
	return difymock.ListenAndServe(ctx, addr, cfg, allowNonLo)
}
