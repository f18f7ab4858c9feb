package workload

import _ "embed"

//go:embed default.toml
var defaultTOML []byte

// DefaultSource names the built-in workload in messages.
const DefaultSource = "built-in default"

// DefaultTOML returns the built-in workload's source (examples/seed.toml is a copy, and
// locustfile's difyload_workload.py holds the same text).
func DefaultTOML() []byte { return append([]byte(nil), defaultTOML...) }

// Default returns the built-in workload: the seed's SimpleChatFlow, ComplexChatFlow and
// FileRetrieval under the classes ChatUser and RetrieveUser. Its keys come from options.
func Default() *Workload {
	w, err := Parse(DefaultSource+".toml", defaultTOML, nil)
	if err != nil {
		panic("workload: the built-in default does not parse: " + err.Error())
	}
	w.Source = DefaultSource
	return w
}
