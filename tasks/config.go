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

	"github.com/difyload/difyload/workload"
)

// Flow names (the built-in workload's apps), as they appear in logs, weights and split
// rows, and its class names.
const (
	ClassChatUser     = "ChatUser"
	ClassRetrieveUser = "RetrieveUser"

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
	// Queries replace the chat apps' queries; empty → the built-in workload's.
	Queries []string
	// Inputs replace the chat apps' "inputs"; nil → the built-in workload's.
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

// optionSplitFlows is locustfile.py's --dify-split-flows in parsed_options.
const optionSplitFlows = "dify_split_flows"

// OptionKeys returns the parsed_options keys that carry the Dify settings: the custom
// argument names locustfile.py defines, whose values the master sends to every worker in
// spawn's parsed_options.
func OptionKeys() Keys {
	return Keys{
		SimpleAppKey:  "dify_simple_app_key",
		ComplexAppKey: "dify_complex_app_key",
		DatasetID:     "dify_dataset_id",
		DatasetKey:    "dify_dataset_key",
	}
}

// Option resolves a key_option or dataset_id_option of the built-in workload with the
// precedence worker flags > the master's parsed_options > Defaults. Other option names are
// read from the master's options alone.
func (c *Config) Option(opts map[string]any, name string) string {
	pick := func(flag, def string) string {
		if flag != "" {
			return flag
		}
		if v, ok := opts[name].(string); ok && v != "" {
			return v
		}
		return def
	}
	optionKeys := OptionKeys()
	switch name {
	case optionKeys.SimpleAppKey:
		return pick(c.SimpleAppKey, c.Defaults.SimpleAppKey)
	case optionKeys.ComplexAppKey:
		return pick(c.ComplexAppKey, c.Defaults.ComplexAppKey)
	case optionKeys.DatasetID:
		return pick(c.DatasetID, c.Defaults.DatasetID)
	case optionKeys.DatasetKey:
		return pick(c.DatasetKey, c.Defaults.DatasetKey)
	}
	return pick("", "")
}

// Workload is the built-in workload (workload.Default) with this configuration's
// overrides: flow weights, waits, class weights, queries and inputs.
func (c *Config) Workload() *workload.Workload {
	w := workload.Default()
	for i := range w.Apps {
		if len(c.Queries) > 0 {
			w.Apps[i].Queries.Inline = append([]string(nil), c.Queries...)
		}
		if c.Inputs != nil {
			w.Apps[i].Inputs = c.Inputs
		}
	}
	for i := range w.Users {
		u := &w.Users[i]
		switch u.Name {
		case ClassChatUser:
			if c.ChatWait != nil {
				u.Wait = workload.Wait{Kind: workload.WaitBetween, Min: c.ChatWait.Min, Max: c.ChatWait.Max}
			}
			if c.ChatUserWeight > 0 {
				u.Weight = c.ChatUserWeight
			}
			if c.SimpleWeight != 0 || c.ComplexWeight != 0 {
				for j := range u.Tasks {
					switch u.Tasks[j].Target {
					case FlowSimpleChat:
						u.Tasks[j].Weight = c.SimpleWeight
					case FlowComplexChat:
						u.Tasks[j].Weight = c.ComplexWeight
					}
				}
			}
		case ClassRetrieveUser:
			if c.RetrieveWait != nil {
				u.Wait = workload.Wait{Kind: workload.WaitBetween, Min: c.RetrieveWait.Min, Max: c.RetrieveWait.Max}
			}
			if c.RetrieveUserWeight > 0 {
				u.Weight = c.RetrieveUserWeight
			}
		}
	}
	return w
}

// Deps returns the Deps of the built-in workload's classes for this configuration.
func (c *Config) Deps(client Streamer, rec Recorder, obs StreamObserver) Deps {
	return Deps{Client: client, Recorder: rec, Observer: obs, Host: c.Host, SplitFlows: c.SplitFlows,
		Header: c.Header, Option: c.Option}
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
