package locusttest

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/difyload/difyload/internal/locustbin"
)

func TestStartMasterT(t *testing.T) {
	for _, v := range []string{locustbin.V2_12, locustbin.Latest} {
		t.Run(v, func(t *testing.T) {
			m := StartMasterT(t, MasterOptions{Version: v, LogLevel: "DEBUG"})
			// Listening already: the web UI answers without a retry.
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, m.WebURL()+"/stats/requests", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("web UI: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"state"`) {
				t.Fatalf("GET /stats/requests: %s %.200s", resp.Status, body)
			}
			if _, err := os.Stat(m.Path("locustfile.py")); err != nil {
				t.Errorf("default locustfile: %v", err)
			}
			m.Stop() // SIGTERM: Locust shuts down on its own
			code, err := m.Wait(0)
			if err != nil || code != 0 {
				t.Errorf("after Stop: code %d, %v; log:\n%s", code, err, m.Tail(20))
			}
			if !strings.Contains(m.Output(), strconv.Itoa(m.WebPort)) {
				t.Errorf("the log does not name the web port %d:\n%s", m.WebPort, m.Tail(20))
			}
		})
	}
}

// A headless master has no web UI to wait for, however it was asked for.
func TestStartMasterHeadless(t *testing.T) {
	for name, o := range map[string]MasterOptions{
		"Headless":       {Headless: &Headless{Users: 1}},
		"--headless arg": {Args: []string{"--headless", "-u", "1", "--expect-workers", "1"}},
	} {
		t.Run(name, func(t *testing.T) {
			o.StartTimeout = 30 * time.Second
			m := StartMasterT(t, o)
			if m.Exited() {
				t.Fatalf("the master exited:\n%s", m.Tail(20))
			}
			resp, err := Get(m.WebURL())
			if err == nil {
				resp.Body.Close()
				t.Errorf("a headless master serves its web UI")
			}
		})
	}
}

// Ports given in Args (the last one wins in Locust) are the ones waited for and reported.
func TestStartMasterPortsFromArgs(t *testing.T) {
	port, web := FreePort(t), FreePort(t)
	m := StartMasterT(t, MasterOptions{Args: []string{"--master-bind-port", strconv.Itoa(port), "--web-port=" + strconv.Itoa(web)}})
	if m.Port != port || m.WebPort != web {
		t.Errorf("ports %d, %d; want %d, %d from Args", m.Port, m.WebPort, port, web)
	}
	if got := lastFlag([]string{"--x", "1", "--x=2", "--x"}, "--x", "0"); got != "2" {
		t.Errorf("lastFlag = %q, want 2", got)
	}
}

func TestStartMasterReportsAFailedStart(t *testing.T) {
	locustbin.Require(t, locustbin.V2_12)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := StartMaster(ctx, MasterOptions{Dir: t.TempDir(), Files: map[string]string{
		"locustfile.py": "import no_such_module_for_locusttest\n",
	}})
	if err == nil {
		m.Kill()
		t.Fatal("a master with a broken locustfile started")
	}
	for _, want := range []string{"locust master 2.12.1 exited", "no_such_module_for_locusttest"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestStartMasterStopsAMasterThatNeverListens(t *testing.T) {
	requireProc(t)
	fake := filepath.Join(t.TempDir(), "locust")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"fake master pid=$$\"\nexec sleep 300\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DIFYLOAD_LOCUST_2_12", fake)
	_, err := StartMaster(context.Background(), MasterOptions{Dir: t.TempDir(), StartTimeout: time.Second, Grace: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "does not listen") || !strings.Contains(err.Error(), "after 1s") {
		t.Fatalf("err = %v, want one saying it does not listen after 1s", err)
	}
	mm := regexp.MustCompile(`fake master pid=(\d+)`).FindStringSubmatch(err.Error())
	if mm == nil {
		t.Fatalf("the error lacks the log tail: %v", err)
	}
	pid, _ := strconv.Atoi(mm[1])
	waitDead(t, pid, 2*time.Second)
}

func TestStartMasterNeedsADir(t *testing.T) {
	if _, err := StartMaster(context.Background(), MasterOptions{}); err == nil {
		t.Error("no Dir accepted")
	}
	if _, err := StartMaster(context.Background(), MasterOptions{Version: "1.0", Dir: t.TempDir()}); err == nil {
		t.Error("unknown version accepted")
	}
}

func TestMasterArgs(t *testing.T) {
	m := &Master{Port: 5557, WebPort: 8089}
	got := strings.Join(masterArgs(MasterOptions{Headless: &Headless{Users: 4, RunTime: "6s"}, CSV: "x", Args: []string{"--host", "h"}}, m), " ")
	want := "-f locustfile.py --master --master-bind-host 127.0.0.1 --master-bind-port 5557 --web-host 127.0.0.1 --web-port 8089" +
		" --headless -u 4 -r 1 --expect-workers 1 -t 6s --csv x --host h"
	if got != want {
		t.Errorf("args\n%s\nwant\n%s", got, want)
	}
}
