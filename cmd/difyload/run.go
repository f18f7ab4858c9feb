package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// errUsage marks a command-line mistake: the usage text was already printed.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

const usageText = `difyload: load-test Dify LLM apps from Go workers of a Locust master.

Usage:
  difyload worker [flags] [Class …]   join a Locust master and run the user classes of its workload
                                      (locustfile.py --dify-workload FILE; default ChatUser/RetrieveUser)
  difyload run [flags] [Class …]      standalone run (no master; --workload FILE); without --host it
                                      starts the mock
  difyload mock [flags]     serve the Dify-compatible mock API
  difyload report compare A.json B.json   compare run reports (--dify-report) side by side
  difyload version

Run "difyload <command> -h" for the flags of a command.
`

// version is the program version; release builds set it with -ldflags "-X main.version=…".
var version = "dev"

// run is the whole program behind main: main only adds the process's signals and exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runEnv(ctx, args, os.LookupEnv, stdout, stderr)
}

// lookupEnv reads one environment variable; tests pass a map.
type lookupEnv func(string) (string, bool)

func runEnv(ctx context.Context, args []string, env lookupEnv, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return errUsage
	}
	switch args[0] {
	case "worker":
		return runWorker(ctx, args[1:], env, stdout, stderr)
	case "run":
		return runStandalone(ctx, args[1:], env, stdout, stderr)
	case "mock":
		return runMock(ctx, args[1:], env, stdout, stderr)
	case "report":
		return runReport(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-V":
		fmt.Fprintln(stdout, "difyload", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	default:
		fmt.Fprintf(stderr, "difyload: unknown command %q\n\n%s", args[0], usageText)
		return errUsage
	}
}

// parseFlags parses args with fs, turning -h and flag errors into errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return errUsage // -h included: the flag set printed the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	return nil
}

// redact shows enough of a key to tell keys apart and never the secret part:
// "app-…wxyz".
func redact(key string) string {
	if key == "" {
		return "(none)"
	}
	prefix, _, found := strings.Cut(key, "-")
	tail := ""
	if len(key) >= 12 {
		tail = key[len(key)-4:]
	}
	if !found || len(prefix) > 10 {
		return "…" + tail
	}
	return prefix + "-…" + tail
}
