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
	fs.BoolVar(&allowNonLo, "allow-non-loopback", envBool(env, "DIFYLOAD_MOCK_ALLOW_NON_LOOPBACK"), "allow binding a non-loopback address (containers) [env DIFYLOAD_MOCK_ALLOW_NON_LOOPBACK]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var err error
	if cfg.Faults, err = difymock.ParseFaults(faults); err != nil {
		return fmt.Errorf("--faults: %w", err)
	}
	fmt.Fprintf(stdout, "difyload mock: Dify-compatible API on http://%s/v1 (truth at /_mock/stats)\n", addr)
	return difymock.ListenAndServe(ctx, addr, cfg, allowNonLo)
}
