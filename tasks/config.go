package tasks

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Flow names, as they appear in logs, weights and split rows.
const (
	FlowSimpleChat  = "SimpleChatFlow"
	FlowComplexChat = "ComplexChatFlow"
	FlowRetrieval   = "FileRetrieval"
)

// Row names shared with locustfile.py. Go and Python workers must report identical
// (Type, Name) pairs so the master merges them into one row.
const (
	MethodPOST       = "POST"
	MethodSSE        = "SSE"
	NameChat         = "/v1/chat-messages"
	NameTTFB         = "TTFB"
	NameFullResponse = "Full Response"
	NameRetrieve     = "/v1/datasets/[id]/retrieve"
)

// DefaultQueries are the chat queries used when no queries file is given; users cycle
// through them.
var defaultQueries = [...]string{
	"你好，请介绍一下 Dify 的主要功能。",
	"如何在 Dify 中创建一个知识库并用于问答？",
}

// DefaultQueries returns a copy of the built-in chat queries.
func DefaultQueries() []string { return append([]string(nil), defaultQueries[:]...) }

// DefaultRetrieveQuery is the knowledge-base query sent by FileRetrieval.
const DefaultRetrieveQuery = "Dify 支持哪些检索方式？"

// WaitRange is Locust's between(min, max): a uniform random wait. The zero value waits 0.
type WaitRange struct {
	Min, Max time.Duration
}

// ParseWaitRange parses "1s-3s", "1-3" (seconds), "2s" or "0".
func ParseWaitRange(s string) (WaitRange, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return WaitRange{}, errors.New("empty wait range")
	}
	lo, hi, found := strings.Cut(s, "-")
	min, err := parseSeconds(lo)
	if err != nil {
		return WaitRange{}, fmt.Errorf("wait range %q: %w", s, err)
	}
	max := min
	if found {
		if max, err = parseSeconds(hi); err != nil {
			return WaitRange{}, fmt.Errorf("wait range %q: %w", s, err)
		}
	}
	w := WaitRange{Min: min, Max: max}
	return w, w.Validate()
}

func parseSeconds(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}

// Validate reports a negative or inverted range.
func (w WaitRange) Validate() error {
	if w.Min < 0 || w.Max < w.Min {
		return fmt.Errorf("invalid wait range %v-%v", w.Min, w.Max)
	}
	return nil
}

// String formats the range as ParseWaitRange accepts it.
func (w WaitRange) String() string { return w.Min.String() + "-" + w.Max.String() }

// Config configures both user classes. Its zero value is usable once Keys are resolved:
// every empty field takes the default named in its comment.
type Config struct {
	// Host overrides the target base URL (e.g. http://127.0.0.1:5001). Empty: the master's
	// --host from the spawn message.
	Host string
	// SimpleAppKey and ComplexAppKey are the Dify app keys of the two chatflows; DatasetID
	// and DatasetKey address the knowledge base. Empty values are taken from the master's
	// parsed options (see OptionKeys), then from Defaults.
	SimpleAppKey, ComplexAppKey string
	DatasetID, DatasetKey       string
	// Defaults fill keys that neither the flags nor the master set (main passes the mock's).
	Defaults Keys
	// Queries are cycled through by every chat user; empty → DefaultQueries.
	Queries []string
	// Inputs are the chat "inputs"; nil → {}.
	Inputs map[string]any
	// SimpleWeight and ComplexWeight pick a ChatUser's flow each iteration; both 0 → 1:1.
	SimpleWeight, ComplexWeight int
	// ChatWait and RetrieveWait are the waits after each task; nil → between(1s,3s) and
	// between(2s,5s).
	ChatWait, RetrieveWait *WaitRange
	// ChatUserWeight and RetrieveUserWeight are the class weights for standalone runs
	// (the master does its own split); 0 → 1.
	ChatUserWeight, RetrieveUserWeight int
	// SplitFlows reports the SSE rows per flow: "TTFB SimpleChatFlow", … The master's
	// --dify-split-flows turns it on too.
	SplitFlows bool
	// Header is added to every request (e.g. X-Mock-* knobs for the mock server).
	Header http.Header
}

// Keys are the Dify credentials and dataset a user needs.
type Keys struct {
	SimpleAppKey, ComplexAppKey, DatasetID, DatasetKey string
}

// OptionKeys are the custom argument names locustfile.py defines; the master sends their
// values to every worker in spawn's parsed_options.
var optionKeys = Keys{
	SimpleAppKey:  "dify_simple_app_key",
	ComplexAppKey: "dify_complex_app_key",
	DatasetID:     "dify_dataset_id",
	DatasetKey:    "dify_dataset_key",
}

// optionSplitFlows is locustfile.py's --dify-split-flows in parsed_options.
const optionSplitFlows = "dify_split_flows"

// OptionKeys returns the parsed_options keys that carry the Dify settings.
func OptionKeys() Keys { return optionKeys }

// resolveKeys applies the precedence flags > master options > defaults.
func (c *Config) resolveKeys(opts map[string]any) Keys {
	pick := func(flag, opt, def string) string {
		if flag != "" {
			return flag
		}
		if v, ok := opts[opt].(string); ok && v != "" {
			return v
		}
		return def
	}
	return Keys{
		SimpleAppKey:  pick(c.SimpleAppKey, optionKeys.SimpleAppKey, c.Defaults.SimpleAppKey),
		ComplexAppKey: pick(c.ComplexAppKey, optionKeys.ComplexAppKey, c.Defaults.ComplexAppKey),
		DatasetID:     pick(c.DatasetID, optionKeys.DatasetID, c.Defaults.DatasetID),
		DatasetKey:    pick(c.DatasetKey, optionKeys.DatasetKey, c.Defaults.DatasetKey),
	}
}

// Validate reports settings that can never work.
func (c *Config) Validate() error {
	if c.SimpleWeight < 0 || c.ComplexWeight < 0 {
		return errors.New("flow weights must not be negative")
	}
	for _, w := range []*WaitRange{c.ChatWait, c.RetrieveWait} {
		if w != nil {
			if err := w.Validate(); err != nil {
				return err
			}
		}
	}
	if c.Host != "" {
		if _, err := baseURL(c.Host); err != nil {
			return err
		}
	}
	return nil
}

// ReadQueries reads one query per non-empty line.
func ReadQueries(r io.Reader) ([]string, error) {
	var qs []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if q := strings.TrimSpace(sc.Text()); q != "" {
			qs = append(qs, q)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read queries: %w", err)
	}
	if len(qs) == 0 {
		return nil, errors.New("queries file has no queries")
	}
	return qs, nil
}

// ParseFlowWeights parses "SimpleChatFlow=3,ComplexChatFlow=1" (names case-insensitive,
// "simple"/"complex" accepted).
func ParseFlowWeights(s string) (simple, complexW int, err error) {
	simple, complexW = 1, 1
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		n, perr := strconv.Atoi(strings.TrimSpace(v))
		if !ok || perr != nil || n < 0 {
			return 0, 0, fmt.Errorf("flow weight %q: want name=non-negative integer", part)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "simple", "simplechatflow":
			simple = n
		case "complex", "complexchatflow":
			complexW = n
		default:
			return 0, 0, fmt.Errorf("flow weight %q: unknown flow (want SimpleChatFlow or ComplexChatFlow)", part)
		}
	}
	if simple+complexW == 0 {
		return 0, 0, errors.New("flow weights are all zero")
	}
	return simple, complexW, nil
}

func baseURL(host string) (string, error) {
	h := strings.TrimRight(strings.TrimSpace(host), "/")
	if !strings.HasPrefix(h, "http://") && !strings.HasPrefix(h, "https://") {
		return "", fmt.Errorf("target host %q: want http:// or https:// URL", host)
	}
	// A Dify base URL may or may not include /v1; the paths below add it.
	h = strings.TrimSuffix(h, "/v1")
	return h, nil
}
