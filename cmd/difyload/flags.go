package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/difyload/difyload/difymock"
	"github.com/difyload/difyload/sse"
	"github.com/difyload/difyload/tasks"
)

// envString and friends give a flag its default from an environment variable, so containers
// configure the worker by env alone. A value set on the command line wins.
func envString(env lookupEnv, name, def string) string {
	if v, ok := env(name); ok && v != "" {
		return v
	}
	return def
}

func envInt(env lookupEnv, name string, def int) (int, error) {
	v, ok := env(name)
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("environment %s=%q: want an integer", name, v)
	}
	return n, nil
}

func envBool(env lookupEnv, name string) bool {
	v, _ := env(name)
	b, _ := strconv.ParseBool(v)
	return b
}

// headerFlag collects repeated --header "Name: value" flags.
type headerFlag struct{ h http.Header }

func (f *headerFlag) String() string { return "" }

func (f *headerFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("header %q: want \"Name: value\"", s)
	}
	if f.h == nil {
		f.h = http.Header{}
	}
	f.h.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}

// userFlags are the flags shared by "worker" and "run": what the users do and how streams
// are read.
type userFlags struct {
	host                        string
	simpleKey, complexKey       string
	datasetID, datasetKey       string
	queriesFile                 string
	flowWeights                 string
	chatWait, retrieveWait      string
	chatWeight, retrieveWeight  int
	splitFlows                  bool
	aggregateAll                bool
	firstToken, idle, streamMax time.Duration
	maxEventSize                int
	insecure, netHTTP           bool
	caFile                      string
	header                      headerFlag
	workload                    string
	clients                     *clients     // set by build
	cfg                         tasks.Config // set by build
}

func (u *userFlags) register(fs *flag.FlagSet, env lookupEnv) {
	fs.StringVar(&u.host, "host", envString(env, "DIFYLOAD_HOST", ""), "Dify base URL (e.g. https://api.dify.ai); overrides the master's --host [env DIFYLOAD_HOST]")
	fs.StringVar(&u.simpleKey, "simple-app-key", envString(env, "DIFY_SIMPLE_APP_KEY", ""), "app key of the simple chatflow; default: the master's --dify-simple-app-key, else the mock's [env DIFY_SIMPLE_APP_KEY]")
	fs.StringVar(&u.complexKey, "complex-app-key", envString(env, "DIFY_COMPLEX_APP_KEY", ""), "app key of the complex chatflow [env DIFY_COMPLEX_APP_KEY]")
	fs.StringVar(&u.datasetID, "dataset-id", envString(env, "DIFY_DATASET_ID", ""), "knowledge base id for RetrieveUser [env DIFY_DATASET_ID]")
	fs.StringVar(&u.datasetKey, "dataset-key", envString(env, "DIFY_DATASET_KEY", ""), "knowledge API key (dataset-…) [env DIFY_DATASET_KEY]")
	fs.StringVar(&u.queriesFile, "queries-file", envString(env, "DIFYLOAD_QUERIES_FILE", ""), "file with one chat query per line, cycled through [env DIFYLOAD_QUERIES_FILE]")
	fs.StringVar(&u.flowWeights, "flow-weights", envString(env, "DIFYLOAD_FLOW_WEIGHTS", "SimpleChatFlow=1,ComplexChatFlow=1"), "ChatUser flow weights [env DIFYLOAD_FLOW_WEIGHTS]")
	fs.StringVar(&u.chatWait, "chat-wait", envString(env, "DIFYLOAD_CHAT_WAIT", "1s-3s"), "ChatUser wait_time between(min-max); 0 for none [env DIFYLOAD_CHAT_WAIT]")
	fs.StringVar(&u.retrieveWait, "retrieve-wait", envString(env, "DIFYLOAD_RETRIEVE_WAIT", "2s-5s"), "RetrieveUser wait_time between(min-max) [env DIFYLOAD_RETRIEVE_WAIT]")
	fs.IntVar(&u.chatWeight, "chat-user-weight", 1, "ChatUser class weight (standalone runs; a master splits users itself)")
	fs.IntVar(&u.retrieveWeight, "retrieve-user-weight", 1, "RetrieveUser class weight (standalone runs)")
	fs.BoolVar(&u.splitFlows, "split-flows", envBool(env, "DIFYLOAD_SPLIT_FLOWS"), "report SSE rows per flow (TTFB SimpleChatFlow, …) [env DIFYLOAD_SPLIT_FLOWS]")
	fs.BoolVar(&u.aggregateAll, "aggregate-all", envBool(env, "DIFYLOAD_AGGREGATE_ALL"), "Aggregated sums every row, SSE rows included (default: only the requests the target served; the master's --dify-aggregate-all sets it too) [env DIFYLOAD_AGGREGATE_ALL]")
	fs.DurationVar(&u.firstToken, "first-token-timeout", 60*time.Second, "fail a stream with no answer token after this long")
	fs.DurationVar(&u.idle, "idle-timeout", 30*time.Second, "fail a stream with no event for this long (Dify pings every 10s)")
	fs.DurationVar(&u.streamMax, "stream-timeout", 5*time.Minute, "fail a stream longer than this")
	fs.IntVar(&u.maxEventSize, "max-event-size", 8<<20, "largest SSE event accepted, in bytes")
	fs.BoolVar(&u.insecure, "insecure", envBool(env, "DIFYLOAD_INSECURE"), "skip TLS certificate verification [env DIFYLOAD_INSECURE]")
	fs.BoolVar(&u.netHTTP, "net-http", envBool(env, "DIFYLOAD_NET_HTTP"), "send requests with Go's net/http transport instead of the lean HTTP/1.1 one (for comparison) [env DIFYLOAD_NET_HTTP]")
	fs.StringVar(&u.caFile, "ca-file", envString(env, "DIFYLOAD_CA_FILE", ""), "PEM bundle of CAs to trust for the target [env DIFYLOAD_CA_FILE]")
	fs.Var(&u.header, "header", "extra request header \"Name: value\" (repeatable; e.g. X-Mock-Fault: 429 for the mock)")
}

// clients makes one sse client per request timeout (apps with their own timeout), all on
// one HTTP transport.
type clients struct {
	base sse.Config
	mu   sync.Mutex
	by   map[time.Duration]*sse.Client
}

func (c *clients) forTimeout(d time.Duration) tasks.Streamer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.by[d]; ok {
		return cl
	}
	cfg := c.base
	cfg.StreamTimeout = d
	cl := sse.NewClient(cfg)
	if c.by == nil {
		c.by = map[time.Duration]*sse.Client{}
	}
	c.by[d] = cl
	return cl
}

// build turns the flags into the sse client and the tasks config.
func (u *userFlags) build() (*sse.Client, tasks.Config, error) {
	var cfg tasks.Config
	tc := sse.TransportConfig{InsecureSkipVerify: u.insecure, NetHTTP: u.netHTTP}
	if u.caFile != "" {
		pem, err := os.ReadFile(u.caFile)
		if err != nil {
			return nil, cfg, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, cfg, fmt.Errorf("--ca-file %s: no PEM certificates found", u.caFile)
		}
		tc.RootCAs = pool
	}
	if u.firstToken <= 0 || u.idle <= 0 || u.streamMax <= 0 || u.maxEventSize <= 0 {
		return nil, cfg, errors.New("timeouts and --max-event-size must be positive")
	}
	u.clients = &clients{base: sse.Config{
		Client:            &http.Client{Transport: sse.NewTransport(tc)},
		MaxEventSize:      u.maxEventSize,
		FirstTokenTimeout: u.firstToken,
		IdleTimeout:       u.idle,
		StreamTimeout:     u.streamMax,
	}}
	client := sse.NewClient(u.clients.base)
	cfg = tasks.Config{
		Host:         u.host,
		SimpleAppKey: u.simpleKey, ComplexAppKey: u.complexKey,
		DatasetID: u.datasetID, DatasetKey: u.datasetKey,
		Defaults: tasks.Keys{
			SimpleAppKey:  difymock.SimpleChatKey,
			ComplexAppKey: difymock.ComplexChatKey,
			DatasetID:     difymock.DefaultDatasetID,
			DatasetKey:    difymock.DatasetKey,
		},
		ChatUserWeight: u.chatWeight, RetrieveUserWeight: u.retrieveWeight,
		SplitFlows: u.splitFlows,
		Header:     u.header.h,
	}
	var err error
	if cfg.SimpleWeight, cfg.ComplexWeight, err = tasks.ParseFlowWeights(u.flowWeights); err != nil {
		return nil, cfg, fmt.Errorf("--flow-weights: %w", err)
	}
	cw, err := tasks.ParseWaitRange(u.chatWait)
	if err != nil {
		return nil, cfg, fmt.Errorf("--chat-wait: %w", err)
	}
	rw, err := tasks.ParseWaitRange(u.retrieveWait)
	if err != nil {
		return nil, cfg, fmt.Errorf("--retrieve-wait: %w", err)
	}
	cfg.ChatWait, cfg.RetrieveWait = &cw, &rw
	if u.queriesFile != "" {
		f, err := os.Open(u.queriesFile)
		if err != nil {
			return nil, cfg, fmt.Errorf("--queries-file: %w", err)
		}
		defer f.Close()
		if cfg.Queries, err = tasks.ReadQueries(f); err != nil {
			return nil, cfg, fmt.Errorf("--queries-file %s: %w", u.queriesFile, err)
		}
	}
	u.cfg = cfg
	return client, cfg, cfg.Validate()
}
