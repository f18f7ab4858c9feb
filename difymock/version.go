package difymock

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultDifyVersion is the Dify release whose wire the mock speaks when Config.DifyVersion
// is empty: the newest 1.13.x.
const DefaultDifyVersion = "1.13.3"

// version is the wire behaviour of one Dify release line (see doc.go, "Dify versions").
type version struct {
	name string // X-Version
	// relay: streaming chatflow and workflow runs execute in a job worker and the HTTP
	// handler relays their events (1.13.0 on).
	relay bool
	// meFirst: a chatflow sends message_end before workflow_finished (1.13.1 on). Without
	// it, workflow_finished comes first, and a relay, which stops at workflow_finished,
	// never sends message_end (1.13.0).
	meFirst bool
}

// parseVersion accepts "1.9" … "1.13.N" (with or without a patch number, an optional
// leading "v"); "" is DefaultDifyVersion.
func parseVersion(s string) (version, error) {
	if s == "" {
		s = DefaultDifyVersion
	}
	v := strings.TrimPrefix(s, "v")
	parts := strings.Split(v, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return version{}, fmt.Errorf("difymock: dify version %q: want 1.9 … 1.13.x", s)
	}
	nums := make([]int, 3)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return version{}, fmt.Errorf("difymock: dify version %q: want 1.9 … 1.13.x", s)
		}
		nums[i] = n
	}
	if nums[0] != 1 || nums[1] < 9 || nums[1] > 13 {
		return version{}, fmt.Errorf("difymock: dify version %q: supported are 1.9 … 1.13.x", s)
	}
	name := v
	if len(parts) == 2 {
		name = v + ".0"
		if nums[1] == 13 {
			name = DefaultDifyVersion // "1.13" means the newest 1.13.x
			nums[2] = 3
		}
	}
	return version{name: name, relay: nums[1] == 13, meFirst: nums[1] == 13 && nums[2] >= 1}, nil
}
