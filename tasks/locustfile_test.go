package tasks

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/difyload/difyload/difymock"
)

// TestLocustfileAgrees keeps locustfile.py and the Go users in step: the same mock keys,
// the same row names, the same option names. Mixed fleets depend on it.
func TestLocustfileAgrees(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../locustfile.py")
	if err != nil {
		t.Fatal(err)
	}
	lf := string(src)
	consts := map[string]string{
		"MOCK_SIMPLE_APP_KEY":  difymock.SimpleChatKey,
		"MOCK_COMPLEX_APP_KEY": difymock.ComplexChatKey,
		"MOCK_DATASET_KEY":     difymock.DatasetKey,
		"MOCK_DATASET_ID":      difymock.DefaultDatasetID,
		"NAME_CHAT":            NameChat,
		"NAME_RETRIEVE":        NameRetrieve,
	}
	for name, want := range consts {
		m := regexp.MustCompile(`(?m)^` + name + ` = "([^"]*)"`).FindStringSubmatch(lf)
		if m == nil || m[1] != want {
			t.Errorf("locustfile.py %s = %v, want %q", name, m, want)
		}
	}
	opts := OptionKeys()
	for _, opt := range []string{opts.SimpleAppKey, opts.ComplexAppKey, opts.DatasetID, opts.DatasetKey} {
		flag := "--" + strings.ReplaceAll(opt, "_", "-")
		if !strings.Contains(lf, `"`+flag+`"`) {
			t.Errorf("locustfile.py does not define %s (parsed option %s)", flag, opt)
		}
	}
	// The user classes themselves come from the workload (difyload_workload.py, checked
	// against workload/ by its tests); the rows and the request fields are written here.
	for _, s := range []string{`"TTFB"`, `"Full Response"`, `"SSE"`, `"POST"`, `"auto_generate_name": False`,
		`"conversation_id": cid`, `"--dify-workload"`, `import difyload_workload as _dw`, `_dw.user_classes(`} {
		if !strings.Contains(lf, s) {
			t.Errorf("locustfile.py lacks %s", s)
		}
	}
}
